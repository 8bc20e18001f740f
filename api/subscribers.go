package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/heraldhq/herald/subscribers"
)

func (s *Server) putSubscriber(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxSubscriberBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("subscriber document over the limit of %d bytes", s.cfg.MaxSubscriberBytes), Limit: int(s.cfg.MaxSubscriberBytes)})
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	sub, err := subscribers.ParseJSON(data)
	if err != nil {
		var fe subscribers.FieldErrors
		if errors.As(err, &fe) {
			writeInputError(w, "invalid subscriber", err)
			return
		}
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	id := r.PathValue("id")
	if sub.ID == "" {
		sub.ID = id
	}
	if sub.ID != id {
		writeFieldError(w, "id", "must equal the path's id")
		return
	}
	created, err := s.d.Subscribers().Put(r.Context(), sub)
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

func (s *Server) getSubscriber(w http.ResponseWriter, r *http.Request) {
	sub, _, err := s.d.Subscribers().Get(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, subscribers.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such subscriber")
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, http.StatusOK, sub.Redacted())
	}
}

func (s *Server) deleteSubscriber(w http.ResponseWriter, r *http.Request) {
	err := s.d.EraseSubscriber(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, subscribers.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such subscriber")
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// subscriberPage is the answer to GET /v1/subscribers.
type subscriberPage struct {
	Items []any  `json:"items"`
	Total int    `json:"total"`
	Next  string `json:"next,omitempty"`
}

func (s *Server) listSubscribers(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		writeFieldError(w, "limit", err.Error())
		return
	}
	page, err := s.d.ListSubscribers(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := subscriberPage{Items: make([]any, len(page.Items)), Total: page.Total, Next: page.Next}
	for i, sub := range page.Items {
		out.Items[i] = sub.Redacted()
	}
	writeJSON(w, http.StatusOK, out)
}
