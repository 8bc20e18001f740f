package dispatcher

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/heraldhq/herald/subscribers"
)

// PublicHandler returns the public pages the engine still serves itself,
// with no login:
//
//	GET    /unsubscribe/{token}         confirmation page
//	POST   /unsubscribe/{token}         one-click unsubscribe, RFC 8058
//
// and hooks, extra public handlers by pattern (provider callbacks such as
// "POST /hooks/twilio/status"). The admin API (/v1, /healthz, /readyz,
// /metrics) is package api's.
func (d *Dispatcher) PublicHandler(hooks map[string]http.Handler) http.Handler {
	pages := &publicPages{d: d}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /unsubscribe/{token}", pages.unsubscribePage)
	mux.HandleFunc("POST /unsubscribe/{token}", pages.unsubscribe)
	for pattern, h := range hooks {
		mux.Handle(pattern, h)
	}
	return mux
}

type publicPages struct {
	d *Dispatcher
}

var unsubscribeTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem">
<h1 style="font-size:1.3rem">{{.Title}}</h1><p>{{.Text}}</p>
{{if .Form}}<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit" style="padding:.6rem 1.2rem">Unsubscribe / Se désabonner / Annulla iscrizione</button></form>{{end}}
</body></html>`))

type pageData struct {
	Title, Text string
	Form        bool
}

func (a *publicPages) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if _, _, err := a.d.links.open(r.PathValue("token")); err != nil {
		w.WriteHeader(http.StatusNotFound)
		_ = unsubscribeTmpl.Execute(w, pageData{Title: "Link not valid", Text: "This unsubscribe link is not valid. / Ce lien de désabonnement n'est pas valide. / Questo link non è valido."})
		return
	}
	_ = unsubscribeTmpl.Execute(w, pageData{Title: "Stop these notifications?", Text: "Confirm to stop receiving incident notifications at this address. / Confirmez pour ne plus recevoir les notifications d'incident à cette adresse. / Conferma per non ricevere più le notifiche di incidente a questo indirizzo.", Form: true})
}

// unsubscribe disables the endpoint named by the token. It is idempotent
// and needs no login, per RFC 8058 one-click unsubscribe.
func (a *publicPages) unsubscribe(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	subID, epID, err := a.d.links.open(r.PathValue("token"))
	if err != nil {
		writeError(w, http.StatusNotFound, "invalid unsubscribe link")
		return
	}
	_, _, err = a.d.store.DisableEndpoint(r.Context(), subID, epID, "unsubscribed", a.d.cfg.Now().UTC())
	if err != nil && !errors.Is(err, subscribers.ErrNotFound) {
		writeError(w, http.StatusServiceUnavailable, "try again later")
		return
	}
	a.d.logger.Info("endpoint unsubscribed", "subscriber", subID, "endpoint", epID)
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = unsubscribeTmpl.Execute(w, pageData{Title: "Unsubscribed", Text: "You will no longer receive incident notifications at this address. / Vous ne recevrez plus de notifications d'incident à cette adresse. / Non riceverai più notifiche di incidente a questo indirizzo."})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "unsubscribed"})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
