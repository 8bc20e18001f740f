package dispatcher

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
)

// APIOptions configures [Dispatcher.Handler].
type APIOptions struct {
	// AdminToken is the bearer token the /v1 API requires. Required.
	AdminToken secret.Value
	// Gatherer, when set, is served on /metrics.
	Gatherer prometheus.Gatherer
	// Hooks are extra public handlers by pattern (provider callbacks such
	// as "POST /hooks/twilio/status").
	Hooks map[string]http.Handler
}

// maxSubscriberBytes limits one subscriber document.
const maxSubscriberBytes = 256 << 10

// Handler returns Herald's HTTP API:
//
//	POST   /v1/incidents                publish an update (202 once JetStream stored it)
//	GET    /v1/incidents/{id}           the incident's snapshot
//	PUT    /v1/subscribers/{id}         create or replace a subscriber
//	GET    /v1/subscribers/{id}         read one (secrets masked)
//	DELETE /v1/subscribers/{id}         remove one
//	GET    /v1/subscribers              list, ?after=ID&limit=N
//	GET    /v1/deliveries               delivery log, ?subscriber=ID[&delivery=ID][&since=RFC3339][&limit=N]
//	GET    /v1/deadletters              ?after=SEQ&limit=N
//	POST   /v1/deadletters/{seq}/replay
//	GET    /v1/suppressions
//	DELETE /v1/suppressions/{address}
//	GET    /healthz, /readyz, /metrics
//
// Everything under /v1 requires "Authorization: Bearer <admin token>".
func (d *Dispatcher) Handler(opts APIOptions) http.Handler {
	api := &api{d: d, token: []byte(opts.AdminToken.Reveal())}
	mux := http.NewServeMux()
	admin := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, api.auth(h)) }
	admin("POST /v1/incidents", api.publish)
	admin("GET /v1/incidents/{id}", api.getIncident)
	admin("PUT /v1/subscribers/{id}", api.putSubscriber)
	admin("GET /v1/subscribers/{id}", api.getSubscriber)
	admin("DELETE /v1/subscribers/{id}", api.deleteSubscriber)
	admin("GET /v1/subscribers", api.listSubscribers)
	admin("GET /v1/deliveries", api.deliveries)
	admin("GET /v1/deadletters", api.deadLetters)
	admin("POST /v1/deadletters/{seq}/replay", api.replay)
	admin("GET /v1/suppressions", api.suppressions)
	admin("DELETE /v1/suppressions/{address}", api.unsuppress)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
			return
		}
		writeJSON(w, 200, map[string]string{"status": "ready"})
	})
	if opts.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	}
	for pattern, h := range opts.Hooks {
		mux.Handle(pattern, h)
	}
	return mux
}

type api struct {
	d     *Dispatcher
	token []byte
}

// auth checks the bearer token in constant time.
func (a *api) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if len(a.token) == 0 || !ok || subtle.ConstantTimeCompare([]byte(got), a.token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong admin token", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// PublishResult is the answer to a publish.
type PublishResult struct {
	ID         string `json:"id"`
	IncidentID string `json:"incident_id"`
	Sequence   int64  `json:"sequence"`
	// StreamSeq is the update's sequence in INCIDENTS.
	StreamSeq uint64 `json:"stream_seq"`
	// Duplicate is true when JetStream already had this event id inside
	// its duplicate window: nothing new was stored.
	Duplicate bool `json:"duplicate"`
}

// PublishEvent validates an encoded event and publishes it on INCIDENTS
// with Nats-Msg-Id = event id, returning once JetStream stored it. Errors
// are the incident package's *TooLargeError or FieldErrors for bad input.
func PublishEvent(ctx context.Context, js jetstream.JetStream, data []byte, maxBytes int) (*PublishResult, error) {
	ev, err := incident.Decode(data, maxBytes)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(IncidentSubject(ev.IncidentID))
	msg.Data = data
	msg.Header.Set(hdrMsgID, ev.ID)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	return &PublishResult{ID: ev.ID, IncidentID: ev.IncidentID, Sequence: ev.Sequence, StreamSeq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

func (a *api) publish(w http.ResponseWriter, r *http.Request) {
	limit := a.d.cfg.MaxEventBytes
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("event over the limit of %d bytes", limit), nil)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error(), nil)
		return
	}
	res, err := PublishEvent(r.Context(), a.d.js, data, limit)
	if err != nil {
		writeInputError(w, "invalid event", err)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}

func (a *api) getIncident(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !incident.ValidIncidentID(id) {
		writeError(w, http.StatusBadRequest, "invalid incident id", nil)
		return
	}
	snap, err := a.d.Snapshot(r.Context(), id)
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error(), nil)
	case snap == nil:
		writeError(w, http.StatusNotFound, "no such incident", nil)
	default:
		writeJSON(w, http.StatusOK, snap)
	}
}

func (a *api) putSubscriber(w http.ResponseWriter, r *http.Request) {
	var sub subscribers.Subscriber
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSubscriberBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sub); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "subscriber document too large", nil)
			return
		}
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error(), nil)
		return
	}
	id := r.PathValue("id")
	if sub.ID == "" {
		sub.ID = id
	}
	if sub.ID != id {
		writeError(w, http.StatusBadRequest, "the id in the body differs from the id in the path", []fieldProblem{{Field: "id", Message: "must equal the path's id"}})
		return
	}
	created, err := a.d.store.Put(r.Context(), &sub)
	if err != nil {
		writeInputError(w, "invalid subscriber", err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, sub.Redacted())
}

func (a *api) getSubscriber(w http.ResponseWriter, r *http.Request) {
	sub, _, err := a.d.store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, subscribers.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such subscriber", nil)
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, sub.Redacted())
}

func (a *api) deleteSubscriber(w http.ResponseWriter, r *http.Request) {
	err := a.d.store.Delete(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, subscribers.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such subscriber", nil)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error(), nil)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *api) listSubscribers(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	ids := a.d.index.Page(r.URL.Query().Get("after"), limit)
	items := make([]any, 0, len(ids))
	for _, id := range ids {
		sub, _, err := a.d.store.Get(r.Context(), id)
		if errors.Is(err, subscribers.ErrNotFound) {
			continue
		}
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error(), nil)
			return
		}
		items = append(items, sub.Redacted())
	}
	page := map[string]any{"items": items, "total": a.d.index.Len()}
	if len(ids) == limit {
		page["next"] = ids[len(ids)-1]
	}
	writeJSON(w, http.StatusOK, page)
}

func (a *api) deliveries(w http.ResponseWriter, r *http.Request) {
	q := Query{SubscriberID: r.URL.Query().Get("subscriber"), DeliveryID: r.URL.Query().Get("delivery")}
	if q.SubscriberID == "" || !subjectToken(q.SubscriberID) || (q.DeliveryID != "" && !subjectToken(q.DeliveryID)) {
		writeError(w, http.StatusBadRequest, "subscriber is required (and ids must be plain tokens)", []fieldProblem{{Field: "subscriber", Message: "is required"}})
		return
	}
	var err error
	if q.Limit, err = intParam(r, "limit", 100, 1, 10000); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	if s := r.URL.Query().Get("since"); s != "" {
		if q.Since, err = time.Parse(time.RFC3339, s); err != nil {
			writeError(w, http.StatusBadRequest, "since must be an RFC 3339 time", nil)
			return
		}
	}
	recs, err := a.d.log.list(r.Context(), q)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": recs})
}

func (a *api) deadLetters(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	after, err := intParam(r, "after", 0, 0, 1<<62)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	items, err := a.d.dlq.List(r.Context(), uint64(after), limit)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (a *api) replay(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		writeError(w, http.StatusBadRequest, "seq must be a positive integer", nil)
		return
	}
	if err := a.d.dlq.Replay(r.Context(), seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			writeError(w, http.StatusNotFound, "no such dead letter", nil)
			return
		}
		writeError(w, http.StatusServiceUnavailable, err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": seq})
}

func (a *api) suppressions(w http.ResponseWriter, r *http.Request) {
	items, err := a.d.supp.List(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (a *api) unsuppress(w http.ResponseWriter, r *http.Request) {
	n, err := a.d.supp.Remove(r.Context(), r.PathValue("address"))
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error(), nil)
	case n == 0:
		writeError(w, http.StatusNotFound, "address not suppressed", nil)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// fieldProblem is one invalid field in an error answer.
type fieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// writeInputError answers 400 with the offending fields, or 413.
func writeInputError(w http.ResponseWriter, msg string, err error) {
	var tooLarge *incident.TooLargeError
	var fe incident.FieldErrors // events' and subscribers' alike
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error(), nil)
	case errors.As(err, &fe):
		fields := make([]fieldProblem, len(fe))
		for i, f := range fe {
			fields[i] = fieldProblem{f.Field, f.Message}
		}
		writeError(w, http.StatusBadRequest, msg+": "+err.Error(), fields)
	default:
		writeError(w, http.StatusServiceUnavailable, err.Error(), nil)
	}
}

func writeError(w http.ResponseWriter, status int, msg string, fields []fieldProblem) {
	body := map[string]any{"error": msg}
	if len(fields) > 0 {
		body["fields"] = fields
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s must be an integer between %d and %d", name, lo, hi)
	}
	return n, nil
}

// subjectToken reports whether s can be one token of a NATS subject.
func subjectToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
