package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
)

// ledgerRowsTrailer is the HTTP trailer that counts the rows of a ledger
// export: a client that finds it knows the export is whole.
const ledgerRowsTrailer = "Herald-Ledger-Rows"

// ledger streams the ledger export the query selects, as CSV or JSON
// lines. Memory stays flat however large the export: rows are written as
// they are folded. A failure once rows were sent aborts the answer (the
// client sees a cut transfer, never a silently short file).
func (s *Server) ledger(w http.ResponseWriter, r *http.Request) {
	// An export lasts as long as it takes (a million rows take about half
	// a minute): the server's write timeout must not cut it.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	q := r.URL.Query()
	f := dispatcher.LedgerFilter{IncidentID: q.Get("incident"), SubscriberID: q.Get("subscriber"), EventID: q.Get("event")}
	format := dispatcher.LedgerJSONL
	if v := q.Get("format"); v != "" {
		var err error
		if format, err = dispatcher.ParseLedgerFormat(v); err != nil {
			writeFieldError(w, "format", "must be csv or jsonl")
			return
		}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := dispatcher.ParseLedgerTime(v)
			if err != nil {
				writeFieldError(w, p.name, "must be an RFC 3339 time or a date (YYYY-MM-DD)")
				return
			}
			*p.dst = t
		}
	}
	out := &lazyAnswer{w: w, start: func() {
		h := w.Header()
		h.Set("Content-Type", format.ContentType())
		h.Set("Content-Disposition", `attachment; filename="herald-ledger.`+string(format)+`"`)
		h.Set("Cache-Control", "no-store")
		h.Set("Trailer", ledgerRowsTrailer)
		w.WriteHeader(http.StatusOK)
	}}
	enc, err := dispatcher.NewLedgerEncoder(out, format)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	n, err := s.d.Ledger().Export(r.Context(), f, enc.Encode)
	if err == nil {
		err = enc.Header()
	}
	if err == nil {
		err = enc.Flush()
	}
	var fe incident.FieldErrors
	switch {
	case err == nil:
		if !out.started {
			out.Write(nil) // an empty export: headers only
		}
		w.Header().Set(ledgerRowsTrailer, strconv.Itoa(n))
	case out.started:
		s.cfg.Logger.Warn("ledger export cut short (the client went away, or JetStream failed)", "rows", n, "err", err)
		panic(http.ErrAbortHandler)
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid filter: " + fe.Error(), Fields: fe})
	default:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

// lazyAnswer sends the answer's headers with its first byte, so that an
// export that fails before any row can still answer with an error.
type lazyAnswer struct {
	w       http.ResponseWriter
	start   func()
	started bool
}

func (a *lazyAnswer) Write(p []byte) (int, error) {
	if !a.started {
		a.started = true
		a.start()
	}
	return a.w.Write(p)
}
