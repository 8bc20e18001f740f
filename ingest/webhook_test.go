package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/ingest"
	"github.com/heraldhq/herald/secret"
)

const testToken = "tok_0123456789abcdef"

// receiver is a Statuspage receiver mounted as serve mounts it.
type receiver struct {
	h   *ingest.StatuspageHandler
	srv *httptest.Server
}

func newReceiver(t *testing.T, bu *bundle, store *ingest.Store, m ingest.Mapping) *receiver {
	t.Helper()
	h, err := ingest.NewStatuspageHandler(ingest.WebhookConfig{Token: testToken, Mapping: m, Now: bu.clock.Now}, store)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(ingest.StatuspagePattern, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &receiver{h: h, srv: srv}
}

// post sends body with token and returns the status and the decoded body.
func (r *receiver) post(t *testing.T, token string, body []byte) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(r.srv.URL+"/ingest/statuspage/"+token, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

// TestWebhookPublishesEachNewUpdateOnce: a 3-update payload, the same
// payload again, then one with a fourth update: the stream holds exactly
// the four updates, each once, in order, with sequences 1 to 4.
func TestWebhookPublishesEachNewUpdateOnce(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	r := newReceiver(t, bu, bu.store("p1"), ingest.Mapping{Components: map[string]string{"ftgks51sfs2d": "nexo-terminals"}})

	code, ans := r.post(t, testToken, fixture(t, "incident-3.json"))
	if code != http.StatusOK || len(ans["published"].([]any)) != 3 {
		t.Fatalf("first payload: %d %v", code, ans)
	}
	code, ans = r.post(t, testToken, fixture(t, "incident-3.json"))
	if code != http.StatusOK || len(ans["published"].([]any)) != 0 {
		t.Fatalf("same payload again: %d %v", code, ans)
	}
	code, ans = r.post(t, testToken, fixture(t, "incident-4.json"))
	if code != http.StatusOK || len(ans["published"].([]any)) != 1 {
		t.Fatalf("one more update: %d %v", code, ans)
	}

	evs := bu.events()
	want := []string{"u1d9qk0w7z3a", "u2h4mn6r8t0b", "u3c5vx7y9p1c", "u4j6kl8m0n2d"}
	if got := ids(evs); !slices.Equal(got, want) {
		t.Fatalf("stream holds %v, want %v", got, want)
	}
	if n := bu.publishes.Load(); n != 4 {
		t.Fatalf("published %d times, want 4 (nothing left to the stream's deduplication)", n)
	}
	for i, ev := range evs {
		if ev.Sequence != int64(i+1) || ev.IncidentID != "p3xk2w9v7q1m" {
			t.Errorf("event %d: incident %s sequence %d", i, ev.IncidentID, ev.Sequence)
		}
	}
	first, third, last := evs[0], evs[2], evs[3]
	if first.Status != incident.Investigating || third.Status != incident.Monitoring || last.Status != incident.Resolved {
		t.Errorf("statuses %s %s %s", first.Status, third.Status, last.Status)
	}
	if first.Priority != incident.P2 {
		t.Errorf("priority of a major impact: %s, want P2", first.Priority)
	}
	if !slices.Equal(first.Components, []string{"nexo-terminals"}) || !slices.Equal(third.Components, []string{"nexo-terminals"}) {
		t.Errorf("components %v and %v (name-only placeholder entry), want [nexo-terminals]", first.Components, third.Components)
	}
	if !first.ShouldNotify() || third.ShouldNotify() {
		t.Errorf("notify: deliver_notifications false must give notify false")
	}
	if first.Title.Plain != "Paiements refusés sur terminaux Nexo / Declined payments on Nexo terminals" ||
		!strings.HasPrefix(first.Body.Plain, "Nous constatons") || first.URL != "https://stspg.io/abc123" {
		t.Errorf("texts: %q / %q / %q", first.Title.Plain, first.Body.Plain, first.URL)
	}
	if first.StartedAt == nil || !first.StartedAt.Equal(time.Date(2025, 4, 7, 7, 5, 0, 0, time.UTC)) ||
		first.PublishedAt == nil || !first.PublishedAt.Equal(time.Date(2025, 4, 7, 7, 14, 0, 0, time.UTC)) {
		t.Errorf("times: started %v published %v", first.StartedAt, first.PublishedAt)
	}
	st, err := r.h.Status(t.Context())
	if err != nil || st.Published != 4 || st.LastPoll == nil || st.LastError != "" {
		t.Errorf("status %+v %v", st, err)
	}
}

// TestWebhookRefusals: a wrong or missing token is 403, a malformed body
// 400, an oversized one 413; none publishes anything.
func TestWebhookRefusals(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	r := newReceiver(t, bu, bu.store("p1"), ingest.Mapping{})
	good := fixture(t, "incident-3.json")
	for _, tc := range []struct {
		name, token string
		body        []byte
		code        int
	}{
		{"wrong token", "tok_0123456789abcdeX", good, http.StatusForbidden},
		{"token prefix", testToken[:10], good, http.StatusForbidden},
		{"token longer", testToken + "0", good, http.StatusForbidden},
		{"malformed JSON", testToken, []byte(`{"incident": {"id": "p3xk2w9v7q1m", "incident_updates": [`), http.StatusBadRequest},
		{"not an object", testToken, []byte(`[1, 2]`), http.StatusBadRequest},
		{"empty body", testToken, nil, http.StatusBadRequest},
		{"trailing data", testToken, append(append([]byte{}, good...), []byte(`{}`)...), http.StatusBadRequest},
		{"wrong type", testToken, []byte(`{"incident": {"id": 42}}`), http.StatusBadRequest},
		{"bad incident id", testToken, []byte(`{"incident": {"id": "a.b", "name": "x", "incident_updates": []}}`), http.StatusBadRequest},
		{"too large", testToken, append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), 1<<20)...), http.StatusRequestEntityTooLarge},
	} {
		code, ans := r.post(t, tc.token, tc.body)
		if code != tc.code || ans["error"] == "" {
			t.Errorf("%s: %d %v, want %d with an error", tc.name, code, ans, tc.code)
		}
	}
	resp, err := http.Get(r.srv.URL + "/ingest/statuspage/" + testToken)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	if evs := bu.events(); len(evs) != 0 || bu.publishes.Load() != 0 {
		t.Fatalf("refused payloads published %v", ids(evs))
	}
	if st, _ := r.h.Status(t.Context()); st.Failures == 0 || st.LastError == "" {
		t.Errorf("status does not show the malformed payloads: %+v", st)
	}
}

// TestWebhookComponentOnlyIgnored: a component status change is logged
// and ignored with a 200, so Statuspage does not retry it.
func TestWebhookComponentOnlyIgnored(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	r := newReceiver(t, bu, bu.store("p1"), ingest.Mapping{})
	code, ans := r.post(t, testToken, fixture(t, "component.json"))
	if code != http.StatusOK || ans["ignored"] != "component payload" {
		t.Fatalf("%d %v", code, ans)
	}
	if len(bu.events()) != 0 {
		t.Fatal("a component payload published an event")
	}
}

// TestWebhookPublishFailure: when JetStream refuses the event the
// receiver answers 503 and publishes the update with the next payload.
func TestWebhookPublishFailure(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	fail := true
	store, err := ingest.OpenStore(t.Context(), bu.js, func(ctx context.Context, ev *incident.Event) error {
		if fail {
			return errUnavailable
		}
		return bu.publish(ctx, ev)
	}, ingest.StoreConfig{Holder: "p1", Now: bu.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, bu, store, ingest.Mapping{})
	if code, ans := r.post(t, testToken, fixture(t, "incident-3.json")); code != http.StatusServiceUnavailable {
		t.Fatalf("%d %v, want 503", code, ans)
	}
	fail = false
	if code, ans := r.post(t, testToken, fixture(t, "incident-3.json")); code != http.StatusOK || len(ans["published"].([]any)) != 3 {
		t.Fatalf("after the failure: %d %v", code, ans)
	}
	if got := ids(bu.events()); len(got) != 3 {
		t.Fatalf("stream holds %v", got)
	}
}

// TestWebhookConfig refuses weak tokens and bad maps.
func TestWebhookConfig(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	store := bu.store("p1")
	for _, tc := range []struct {
		name string
		cfg  ingest.WebhookConfig
	}{
		{"no token", ingest.WebhookConfig{}},
		{"short token", ingest.WebhookConfig{Token: "short"}},
		{"token with slash", ingest.WebhookConfig{Token: secret.Value("0123456789abcdef/x")}},
		{"component map to a bad id", ingest.WebhookConfig{Token: testToken, Mapping: ingest.Mapping{Components: map[string]string{"x": "Not An Id"}}}},
		{"impact map to a bad priority", ingest.WebhookConfig{Token: testToken, Mapping: ingest.Mapping{Impact: map[string]incident.Priority{"major": "P9"}}}},
		{"impact map of an unknown impact", ingest.WebhookConfig{Token: testToken, Mapping: ingest.Mapping{Impact: map[string]incident.Priority{"huge": "P1"}}}},
	} {
		if _, err := ingest.NewStatuspageHandler(tc.cfg, store); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

var errUnavailable = errors.New("nats: no responders available for request")

// withIncident returns a webhook fixture with its incident edited by f.
func withIncident(t *testing.T, name string, f func(inc map[string]any)) []byte {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(fixture(t, name), &body); err != nil {
		t.Fatal(err)
	}
	f(body["incident"].(map[string]any))
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// movedWindow is maintenance-scheduled.json with its window set to
// start-end by an edit at changed, no update added.
func movedWindow(t *testing.T, start, end, changed string) []byte {
	return withIncident(t, "maintenance-scheduled.json", func(inc map[string]any) {
		inc["scheduled_for"], inc["scheduled_until"], inc["updated_at"] = start, end, changed
	})
}

// TestWebhookMaintenanceWindowMovedWithoutUpdate: the operator moves an
// announced maintenance's window without posting an update; the payload
// carries the new window and no new update. Herald publishes one
// synthetic announcement (id <update>~window-<hash>, next sequence, the
// latest update's status and texts, the new window), once: not on the
// same payload again, nor from another process, nor after a restart; a
// stale payload (older updated_at, the old window) moves nothing back; a
// real update carrying the window publishes itself only; a move back to
// the first window is a new announcement with a new id.
func TestWebhookMaintenanceWindowMovedWithoutUpdate(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	r := newReceiver(t, bu, bu.store("p1"), ingest.Mapping{})
	post := func(r *receiver, body []byte, want int) []any {
		t.Helper()
		code, ans := r.post(t, testToken, body)
		if code != http.StatusOK || len(ans["published"].([]any)) != want {
			t.Fatalf("%d %v, want %d published", code, ans, want)
		}
		return ans["published"].([]any)
	}
	post(r, fixture(t, "maintenance-scheduled.json"), 1)
	moved := movedWindow(t, "2025-06-08T22:00:00.000Z", "2025-06-09T02:00:00.000Z", "2025-05-21T08:00:00.000Z")
	got := post(r, moved, 1)
	synthetic, _ := got[0].(string)
	// The first 4 bytes of SHA-256("2025-06-08T22:00:00Z/2025-06-09T02:00:00Z").
	if synthetic != "mu1announce0~window-a67a100f" {
		t.Fatalf("synthetic update id %q, want mu1announce0~window-<hash of the window>", synthetic)
	}
	post(r, moved, 0)
	// Another process, then a restart of the server and the process.
	post(newReceiver(t, bu, bu.store("p2"), ingest.Mapping{}), moved, 0)
	bu.restart()
	r = newReceiver(t, bu, bu.store("p1-restarted"), ingest.Mapping{})
	post(r, moved, 0)
	// A stale copy of the first payload (older updated_at) moves nothing.
	post(r, fixture(t, "maintenance-scheduled.json"), 0)

	evs := bu.events()
	if got := ids(evs); !slices.Equal(got, []string{"mu1announce0", synthetic}) || bu.publishes.Load() != 2 {
		t.Fatalf("stream holds %v after %d publishes", got, bu.publishes.Load())
	}
	first, ev := evs[0], evs[1]
	if ev.Sequence != 2 || ev.Status != incident.Scheduled || ev.Cancelled || !ev.ShouldNotify() || ev.PublishedAt != nil ||
		!ev.ScheduledFor.Equal(*ts("2025-06-08T22:00:00Z")) || !ev.ScheduledUntil.Equal(*ts("2025-06-09T02:00:00Z")) ||
		ev.Title.Plain != first.Title.Plain || ev.Body.Plain != first.Body.Plain || ev.IncidentID != first.IncidentID || !slices.Equal(ev.Components, first.Components) {
		t.Fatalf("synthetic update %+v, announcement %+v", ev, first)
	}

	// A real update with the window it shows: published alone.
	post(r, withIncident(t, "maintenance-moved.json", func(inc map[string]any) {
		inc["scheduled_for"], inc["scheduled_until"], inc["updated_at"] = "2025-06-08T22:00:00.000Z", "2025-06-09T02:00:00.000Z", "2025-05-25T08:00:00.000Z"
	}), 1)
	// Back to the first window without an update: a new announcement.
	back := withIncident(t, "maintenance-moved.json", func(inc map[string]any) {
		inc["scheduled_for"], inc["scheduled_until"], inc["updated_at"] = "2025-06-01T22:00:00.000Z", "2025-06-02T02:00:00.000Z", "2025-05-26T08:00:00.000Z"
	})
	got = post(r, back, 1)
	post(r, back, 0)
	evs = bu.events()
	if len(evs) != 4 || evs[2].ID != "mu2moved0000" || evs[3].ID != got[0] || !strings.HasPrefix(evs[3].ID, "mu2moved0000~window-") ||
		evs[3].Sequence != 4 || !evs[3].ScheduledFor.Equal(*ts("2025-06-01T22:00:00Z")) {
		t.Fatalf("stream holds %v", ids(evs))
	}
}
