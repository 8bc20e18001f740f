package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

func (s *Server) deliveries(w http.ResponseWriter, r *http.Request) {
	q := dispatcher.Query{SubscriberID: r.URL.Query().Get("subscriber"), DeliveryID: r.URL.Query().Get("delivery")}
	switch {
	case q.SubscriberID == "":
		writeFieldError(w, "subscriber", "is required")
		return
	case !subscribers.ValidID(q.SubscriberID):
		writeFieldError(w, "subscriber", "must be a subscriber id")
		return
	case q.DeliveryID != "" && !incident.ValidIncidentID(q.DeliveryID):
		writeFieldError(w, "delivery", "must be a delivery id")
		return
	}
	var err error
	if q.Limit, err = intParam(r, "limit", 100, 1, 10000); err != nil {
		writeFieldError(w, "limit", err.Error())
		return
	}
	if v := r.URL.Query().Get("since"); v != "" {
		if q.Since, err = time.Parse(time.RFC3339, v); err != nil {
			writeFieldError(w, "since", "must be an RFC 3339 time")
			return
		}
	}
	recs, err := s.d.Deliveries(r.Context(), q)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if recs == nil {
		recs = []dispatcher.Record{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": recs})
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		writeFieldError(w, "limit", err.Error())
		return
	}
	after, err := intParam(r, "after", 0, 0, 1<<62)
	if err != nil {
		writeFieldError(w, "after", err.Error())
		return
	}
	items, err := s.d.DeadLetters().List(r.Context(), uint64(after), limit)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if items == nil {
		items = []dispatcher.DeadLetter{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		writeFieldError(w, "seq", "must be a positive integer")
		return
	}
	if err := s.d.DeadLetters().Replay(r.Context(), seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			writeError(w, http.StatusNotFound, "no such dead letter")
			return
		}
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": seq})
}

func (s *Server) suppressions(w http.ResponseWriter, r *http.Request) {
	items, err := s.d.Suppressions().List(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if items == nil {
		items = []dispatcher.Suppression{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) unsuppress(w http.ResponseWriter, r *http.Request) {
	n, err := s.d.Suppressions().Remove(r.Context(), r.PathValue("address"))
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case n == 0:
		writeError(w, http.StatusNotFound, "address not suppressed")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
