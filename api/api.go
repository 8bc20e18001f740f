package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/secret"
)

// Config configures the admin API.
type Config struct {
	// AdminToken is the bearer token every /v1 route requires. Required.
	AdminToken secret.Value
	// Gatherer, when set, is served on /metrics (no token).
	Gatherer prometheus.Gatherer
	// Sources, when set, serves GET /v1/sources: the state of the
	// status-page sources (package ingest's Sources.Handler). The admin
	// token guards it like every /v1 route.
	Sources http.Handler
	// RequireLocales lists, per priority, the languages an update must
	// carry to be published (P1: fr, en, it). An update missing one is
	// refused with 400 naming the missing languages, unless the request
	// says ?allow_fallback=true. An update without a priority is
	// checked as the engine's unrated priority. Defaults to none.
	RequireLocales dispatcher.RequiredLocales
	// MaxSubscriberBytes limits one subscriber document. Defaults to
	// 256 KiB.
	MaxSubscriberBytes int64
	// Logger receives the API's own records. Defaults to discarding.
	Logger *slog.Logger
}

// DefaultMaxSubscriberBytes is the default of Config.MaxSubscriberBytes.
const DefaultMaxSubscriberBytes = 256 << 10

// WithDefaults returns c with its defaults filled in.
func (c Config) WithDefaults() Config {
	if c.MaxSubscriberBytes <= 0 {
		c.MaxSubscriberBytes = DefaultMaxSubscriberBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks a configuration with its defaults filled in.
func (c Config) validate() error {
	if c.AdminToken.IsZero() {
		return errors.New("api: an admin token is required")
	}
	if err := c.RequireLocales.Validate(); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	return nil
}

// route is one admin route: its pattern and handler.
type route struct {
	pattern string
	handler http.HandlerFunc
	// open routes need no token.
	open bool
}

// Server is the admin API. It is an http.Handler.
type Server struct {
	cfg    Config
	d      *dispatcher.Dispatcher
	token  secret.Value
	mux    *http.ServeMux
	routes []route
}

// New returns the admin API over the engine d.
func New(d *dispatcher.Dispatcher, cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if d == nil {
		return nil, errors.New("api: an engine is required")
	}
	s := &Server{cfg: cfg, d: d, token: cfg.AdminToken, mux: http.NewServeMux()}
	s.routes = []route{
		{pattern: "POST /v1/incidents", handler: s.publish},
		{pattern: "GET /v1/incidents/{id}", handler: s.getIncident},
		{pattern: "POST /v1/incidents/{id}/recall", handler: s.recall},
		{pattern: "PUT /v1/subscribers/{id}", handler: s.putSubscriber},
		{pattern: "GET /v1/subscribers/{id}", handler: s.getSubscriber},
		{pattern: "DELETE /v1/subscribers/{id}", handler: s.deleteSubscriber},
		{pattern: "GET /v1/subscribers", handler: s.listSubscribers},
		{pattern: "GET /v1/deliveries", handler: s.deliveries},
		{pattern: "GET /v1/ledger", handler: s.ledger},
		{pattern: "GET /v1/deadletters", handler: s.deadLetters},
		{pattern: "POST /v1/deadletters/{seq}/replay", handler: s.replay},
		{pattern: "GET /v1/suppressions", handler: s.suppressions},
		{pattern: "DELETE /v1/suppressions/{address}", handler: s.unsuppress},
		{pattern: "GET /healthz", handler: s.healthz, open: true},
		{pattern: "GET /readyz", handler: s.readyz, open: true},
	}
	if cfg.Sources != nil {
		s.routes = append(s.routes, route{pattern: "GET /v1/sources", handler: cfg.Sources.ServeHTTP})
	}
	if cfg.Gatherer != nil {
		metrics := promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
		s.routes = append(s.routes, route{pattern: "GET /metrics", handler: metrics.ServeHTTP, open: true})
	}
	for _, r := range s.routes {
		var h http.Handler = r.handler
		if !r.open {
			h = s.auth(h)
		}
		s.mux.Handle(r.pattern, h)
	}
	return s, nil
}

// ServeHTTP serves the admin routes, and the public handler for the rest.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Routes returns the patterns of the admin routes ("POST /v1/incidents"),
// in registration order.
func (s *Server) Routes() []string {
	out := make([]string, len(s.routes))
	for i, r := range s.routes {
		out[i] = r.pattern
	}
	return out
}

// auth checks the bearer token in constant time.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !s.token.Matches(got) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.d.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	if troubles := s.d.Troubles(); len(troubles) > 0 {
		// Herald's own infrastructure fails: work waits and tries again.
		writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "degraded", Troubles: troubles})
		return
	}
	writeJSON(w, http.StatusOK, readiness{Status: "ready"})
}

// readiness is the answer of /readyz.
type readiness struct {
	// Status is ready, degraded or not ready.
	Status string `json:"status"`
	// Troubles are the components of Herald's infrastructure that failed
	// within the last 30 seconds and have not worked since.
	Troubles []dispatcher.Trouble `json:"troubles,omitempty"`
}

// errorBody is every error answer.
type errorBody struct {
	Error string `json:"error"`
	// Fields lists the problems of the input, at most
	// incident.MaxFieldErrors of them and one entry counting the others.
	Fields incident.FieldErrors `json:"fields,omitempty"`
	// Missing names the languages an update lacks (coverage refusals).
	Missing []string `json:"missing_locales,omitempty"`
	// Coverage is the update's translation coverage (coverage refusals).
	Coverage *dispatcher.Coverage `json:"coverage,omitempty"`
	// Priority is the priority whose languages were checked: the
	// update's, or the unrated priority when it has none (coverage
	// refusals).
	Priority incident.Priority `json:"priority,omitempty"`
	// Limit is the size limit in bytes (413 answers).
	Limit int `json:"limit,omitempty"`
}

// writeInputError answers 400 with the offending fields, or 413; other
// errors are the engine's: 503.
func writeInputError(w http.ResponseWriter, what string, err error) {
	var tooLarge *incident.TooLargeError
	var fe incident.FieldErrors
	switch {
	case errors.As(err, &tooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: err.Error(), Limit: tooLarge.Limit})
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: what + ": " + fe.Error(), Fields: fe})
	default:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeFieldError(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusBadRequest, errorBody{Error: field + ": " + msg, Fields: []incident.FieldError{{Field: field, Message: msg}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// intParam reads an integer query parameter between lo and hi.
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("must be an integer between %d and %d", lo, hi)
	}
	return n, nil
}

// boolParam reads a boolean query parameter (true, false, 1, 0; empty is
// false).
func boolParam(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, errors.New("must be true or false")
	}
	return v, nil
}
