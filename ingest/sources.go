package ingest

import (
	"context"
	"net/http"
	"time"
)

// SourceStatus is the state of one source, as GET /v1/sources shows it.
type SourceStatus struct {
	// Name and Kind identify the source: kind statuspage-webhook,
	// statuspage-api or feed.
	Name string `json:"name"`
	Kind string `json:"kind"`
	// URL is the page or feed polled (the route, for the receiver).
	URL string `json:"url"`
	// Interval is the poll interval ("1m0s"); empty for the receiver.
	Interval string `json:"interval,omitempty"`
	// LastPoll is when the last poll ended (the last payload, for the
	// receiver); LastSuccess the last one without an error.
	LastPoll    *time.Time `json:"last_poll"`
	LastSuccess *time.Time `json:"last_success"`
	// LastStatus is the HTTP status of the page's last answer.
	LastStatus int `json:"last_status,omitempty"`
	// Resources are the validators kept per URL path.
	Resources []ResourceStatus `json:"resources,omitempty"`
	// LastError is the last poll's error; empty after a success.
	LastError string `json:"last_error,omitempty"`
	// Failures counts consecutive failed polls (payloads).
	Failures int `json:"failures"`
	// NextPoll is when the source is polled next.
	NextPoll *time.Time `json:"next_poll,omitempty"`
	// Published counts the events published (by every process for a
	// poller; by this process for the receiver).
	Published int64 `json:"published"`
	// Holder is the process that polled last; Polling is true when it is
	// this one.
	Holder  string `json:"holder,omitempty"`
	Polling bool   `json:"polling"`
	// StatusError is set when the state could not be read.
	StatusError string `json:"status_error,omitempty"`
}

// ResourceStatus is what a poller keeps of one URL.
type ResourceStatus struct {
	Path         string `json:"path"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// Source is a running source that can report its state.
type Source interface {
	Status(ctx context.Context) (SourceStatus, error)
}

// Sources is the set of configured sources.
type Sources struct {
	list []Source
}

// NewSources returns the set of list, reported in that order.
func NewSources(list ...Source) *Sources {
	return &Sources{list: list}
}

// Status reports every source. A source whose state cannot be read is
// reported with StatusError.
func (s *Sources) Status(ctx context.Context) []SourceStatus {
	out := make([]SourceStatus, 0, len(s.list))
	for _, src := range s.list {
		st, err := src.Status(ctx)
		if err != nil {
			st.StatusError = err.Error()
		}
		out = append(out, st)
	}
	return out
}

// SourcesPattern is the route of [Sources.Handler].
const SourcesPattern = "GET /v1/sources"

// sourcesAnswer is the body of GET /v1/sources.
type sourcesAnswer struct {
	Sources []SourceStatus `json:"sources"`
}

// Handler serves GET /v1/sources: {"sources": [...]}. It checks no token:
// package api mounts it behind the admin token.
func (s *Sources) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, sourcesAnswer{Sources: s.Status(r.Context())})
	})
}
