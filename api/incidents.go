package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
)

// publishAnswer is the answer to POST /v1/incidents.
type publishAnswer struct {
	*dispatcher.PublishResult
	// Coverage is the update's translation coverage among its audience.
	Coverage *dispatcher.Coverage `json:"coverage"`
}

// publish validates an event, checks its languages against
// require_locales and publishes it; the answer carries its translation
// coverage.
func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	allowFallback, err := boolParam(r, "allow_fallback")
	if err != nil {
		writeFieldError(w, "allow_fallback", err.Error())
		return
	}
	limit := s.d.MaxEventBytes()
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("event over the limit of %d bytes", limit), Limit: limit})
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	ev, err := incident.Decode(data, limit)
	if err != nil {
		writeInputError(w, "invalid event", err)
		return
	}
	cov, err := s.d.Coverage(ev)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	var missing *dispatcher.MissingLocalesError
	if err := s.d.CheckLocales(s.cfg.RequireLocales, ev, cov); errors.As(err, &missing) && !allowFallback {
		writeJSON(w, http.StatusBadRequest, errorBody{
			Error:   err.Error(),
			Fields:  []incident.FieldError{{Field: "body", Message: err.Error()}},
			Missing: missing.Missing, Coverage: cov, Priority: missing.Priority,
		})
		return
	} else if err != nil && missing == nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	res, err := s.d.PublishValid(r.Context(), ev, data)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, publishAnswer{PublishResult: res, Coverage: cov})
}

// incidentAnswer is the answer to GET /v1/incidents/{id}: the snapshot,
// and where each update's notifications stand.
type incidentAnswer struct {
	*dispatcher.Snapshot
	// Progress has one entry per update of Updates, in the same order.
	Progress []dispatcher.UpdateProgress `json:"progress"`
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !incident.ValidIncidentID(id) {
		writeFieldError(w, "id", "must be an incident id (letters, digits, '-' and '_')")
		return
	}
	// One read of the snapshot: the progress follows the updates it lists.
	p, err := s.d.Progress(r.Context(), id)
	switch {
	case errors.Is(err, dispatcher.ErrNoIncident):
		writeError(w, http.StatusNotFound, "no such incident")
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, http.StatusOK, incidentAnswer{Snapshot: p.Snapshot, Progress: p.Updates})
	}
}

// recallRequest is the body of POST /v1/incidents/{id}/recall.
type recallRequest struct {
	// EventID names the update to recall.
	EventID string `json:"event_id"`
}

// recall cancels the notifications of one update not yet sent, and lists
// those already sent.
func (s *Server) recall(w http.ResponseWriter, r *http.Request) {
	// Recording every notice of a large update recalled may outlast the
	// server's write timeout; the CLI waits two minutes for it.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(2 * time.Minute))
	id := r.PathValue("id")
	if !incident.ValidIncidentID(id) {
		writeFieldError(w, "id", "must be an incident id (letters, digits, '-' and '_')")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "the request is over 4 KiB")
		return
	}
	var req recallRequest
	if err := decodeStrict(data, &req); err != nil {
		writeInputError(w, "invalid request", err)
		return
	}
	if req.EventID == "" {
		writeFieldError(w, "event_id", "is required")
		return
	}
	res, err := s.d.Recall(r.Context(), id, req.EventID)
	switch {
	case errors.Is(err, dispatcher.ErrNoUpdate):
		writeError(w, http.StatusNotFound, "no update "+req.EventID+" of incident "+id)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.cfg.Logger.Warn("update recalled through the API", "incident", id, "event", req.EventID, "recalled", res.Recalled, "sent", res.SentTotal)
		writeJSON(w, http.StatusOK, res)
	}
}

// decodeStrict decodes a small JSON request body as events are decoded:
// unknown, repeated and wrongly cased keys refused, a byte order mark
// skipped. Errors are incident.FieldErrors.
func decodeStrict(data []byte, v any) error {
	var fe incident.FieldErrors
	switch err := incident.DecodeStrict(data, v); {
	case errors.As(err, &fe):
		return fe
	case err != nil:
		return incident.FieldErrors{{Field: "(body)", Message: err.Error()}}
	}
	return nil
}
