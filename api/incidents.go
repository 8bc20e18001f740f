package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"

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
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("event over the limit of %d bytes", limit))
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
			Missing: missing.Missing, Coverage: cov,
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

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !incident.ValidIncidentID(id) {
		writeFieldError(w, "id", "must be an incident id (letters, digits, '-' and '_')")
		return
	}
	snap, err := s.d.Snapshot(r.Context(), id)
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case snap == nil:
		writeError(w, http.StatusNotFound, "no such incident")
	default:
		writeJSON(w, http.StatusOK, snap)
	}
}
