package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/heraldhq/herald/secret"
)

// StatuspagePath is the route of the Statuspage webhook receiver; the
// last segment is the secret token.
const StatuspagePath = "/ingest/statuspage/{token}"

// StatuspagePattern is the http.ServeMux pattern of the receiver.
const StatuspagePattern = "POST " + StatuspagePath

// SourceKindStatuspage names Statuspage sources in the store: the webhook
// receiver and the API poller of one page share their records, so an
// update received by one is not published again by the other.
const SourceKindStatuspage = "statuspage"

// MinTokenLength is the least length of a webhook token.
const MinTokenLength = 16

// WebhookConfig configures a [StatuspageHandler].
type WebhookConfig struct {
	// Token is the secret last segment of the webhook URL. Required, at
	// least MinTokenLength characters, letters, digits, '-', '_' and '.'.
	Token secret.Value
	// Mapping converts Statuspage's components, impacts and statuses.
	Mapping Mapping
	// MaxBytes bounds a payload. Defaults to 1 MiB.
	MaxBytes int64
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c with the zero fields set to their
// defaults.
func (c WebhookConfig) WithDefaults() WebhookConfig {
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c WebhookConfig) validate() error {
	if err := CheckToken(c.Token); err != nil {
		return err
	}
	if c.MaxBytes < 0 {
		return errors.New("ingest: the payload limit must not be negative")
	}
	return c.Mapping.Validate()
}

// CheckToken reports whether tok is fit to be a webhook token.
func CheckToken(tok secret.Value) error {
	t := tok.Reveal()
	if len(t) < MinTokenLength {
		return fmt.Errorf("ingest: the Statuspage token must be at least %d characters", MinTokenLength)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return errors.New("ingest: the Statuspage token may hold letters, digits, '-', '_' and '.' only (it is part of a URL)")
		}
	}
	return nil
}

// StatuspageHandler receives Statuspage webhooks. Mount it on
// [StatuspagePattern]. It answers:
//
//   - 403 when the token is not the configured one (their SHA-256
//     digests compared in constant time, so that neither the token's
//     content nor its length shows in the answer's timing);
//   - 400 for a body that is not a Statuspage payload, and 413 over the
//     size limit, publishing nothing;
//   - 200 once the updates not seen before are published (none for a
//     component-only payload, which is logged and ignored), with
//     {"published": [event ids], "skipped": [problems]};
//   - 503 when JetStream could not take them: nothing is lost, the
//     updates not published are published with the next payload or poll.
type StatuspageHandler struct {
	cfg   WebhookConfig
	store *Store

	mu     sync.Mutex
	status SourceStatus
}

// NewStatuspageHandler returns a receiver publishing through store.
func NewStatuspageHandler(cfg WebhookConfig, store *Store) (*StatuspageHandler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("ingest: a store is required")
	}
	return &StatuspageHandler{
		cfg: cfg, store: store,
		status: SourceStatus{Name: "statuspage-webhook", Kind: "statuspage-webhook", URL: StatuspagePath},
	}, nil
}

// webhookAnswer is the body of a 200 answer.
type webhookAnswer struct {
	Published []string `json:"published"`
	Skipped   []string `json:"skipped,omitempty"`
	Ignored   string   `json:"ignored,omitempty"`
}

// ServeHTTP handles one webhook.
func (h *StatuspageHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.cfg.Token.Matches(r.PathValue("token")) {
		writeError(w, http.StatusForbidden, "forbidden")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.fail(fmt.Errorf("payload over %d bytes", h.cfg.MaxBytes))
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over the limit of %d bytes", h.cfg.MaxBytes))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	p, err := ParseStatuspageWebhook(data)
	if err != nil {
		h.fail(err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if p.Incident == nil {
		kind := "unknown"
		if len(p.ComponentUpdate) > 0 || len(p.Component) > 0 {
			kind = "component"
		}
		h.cfg.Logger.Info("Statuspage payload without an incident ignored", "kind", kind)
		h.received(0, nil)
		writeJSON(w, http.StatusOK, webhookAnswer{Published: []string{}, Ignored: kind + " payload"})
		return
	}
	inc, err := h.cfg.Mapping.Convert(p.Incident)
	if err != nil {
		h.fail(err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ans := webhookAnswer{Published: []string{}}
	for _, perr := range inc.Problems {
		h.cfg.Logger.Warn("Statuspage update not converted", "err", perr)
		ans.Skipped = append(ans.Skipped, perr.Error())
	}
	res, err := h.store.Publish(r.Context(), SourceKindStatuspage, inc, false)
	for _, ev := range res.Published {
		ans.Published = append(ans.Published, ev.ID)
	}
	if err != nil {
		h.cfg.Logger.Warn("Statuspage updates not published; they will be with the next payload or poll", "incident", inc.ID, "err", err)
		h.fail(err)
		writeError(w, http.StatusServiceUnavailable, "the updates could not be published now; send again later")
		return
	}
	if len(res.Published) > 0 {
		h.cfg.Logger.Info("Statuspage updates published", "incident", inc.ID, "events", ans.Published)
	}
	var problem error
	if len(inc.Problems) > 0 {
		problem = errors.Join(inc.Problems...)
	}
	h.received(len(res.Published), problem)
	writeJSON(w, http.StatusOK, ans)
}

// received records a payload handled.
func (h *StatuspageHandler) received(published int, problem error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	h.status.LastPoll = &now
	h.status.Published += int64(published)
	if problem == nil {
		h.status.LastSuccess = &now
		h.status.LastError, h.status.Failures = "", 0
		return
	}
	h.status.LastError = problem.Error()
	h.status.Failures++
}

// fail records a payload refused or not published.
func (h *StatuspageHandler) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.cfg.Now()
	h.status.LastPoll = &now
	h.status.LastError = err.Error()
	h.status.Failures++
}

// Status reports the payloads this process received (LastPoll is the
// last payload). Payloads with a wrong token are not counted: they are
// not the page's.
func (h *StatuspageHandler) Status(context.Context) (SourceStatus, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status, nil
}

// errorBody is the JSON of an error answer, the shape of Herald's API.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
