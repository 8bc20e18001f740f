package ingest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/ingest"
)

// page is a local Statuspage: incidents.json answers with an ETag,
// scheduled-maintenances.json with Last-Modified only; both honour
// conditional requests.
type page struct {
	srv *httptest.Server

	mu           sync.Mutex
	incidents    []ingest.StatuspageIncident
	maintenances []ingest.StatuspageIncident
	modified     time.Time
	fail         int    // answer this status instead while non-zero
	retryAfter   string // with this Retry-After
	requests     int
	notModified  int
	conditional  bool // honour conditional requests
}

func newPage(t *testing.T) *page {
	p := &page{modified: time.Date(2025, 5, 20, 10, 0, 0, 0, time.UTC), conditional: true}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *page) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if p.fail != 0 {
		if p.retryAfter != "" {
			w.Header().Set("Retry-After", p.retryAfter)
		}
		http.Error(w, "oops", p.fail)
		return
	}
	page := map[string]any{"id": "x8y2mdq4k1hb", "name": "Example", "url": "https://status.example.com"}
	switch r.URL.Path {
	case ingest.PathIncidents:
		body, _ := json.Marshal(map[string]any{"page": page, "incidents": p.incidents})
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		w.Header().Set("ETag", etag)
		if p.conditional && r.Header.Get("If-None-Match") == etag {
			p.notModified++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(body)
	case ingest.PathMaintenances:
		body, _ := json.Marshal(map[string]any{"page": page, "scheduled_maintenances": p.maintenances})
		w.Header().Set("Last-Modified", p.modified.Format(http.TimeFormat))
		if since, err := http.ParseTime(r.Header.Get("If-Modified-Since")); p.conditional && err == nil && !p.modified.After(since) {
			p.notModified++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

// change runs f on the page's content.
func (p *page) change(f func(p *page)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
	p.modified = p.modified.Add(time.Minute)
}

func (p *page) counts() (requests, notModified int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests, p.notModified
}

func ts(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func spUpdate(id, status, at string) ingest.StatuspageUpdate {
	return ingest.StatuspageUpdate{ID: id, Status: status, Body: "Update " + id, CreatedAt: ts(at), DisplayAt: ts(at)}
}

// spIncident is an incident with its updates, newest first as Statuspage
// lists them.
func spIncident(id, status string, ups ...ingest.StatuspageUpdate) ingest.StatuspageIncident {
	slices.Reverse(ups)
	return ingest.StatuspageIncident{ID: id, Name: "Incident " + id, Status: status, Impact: "minor",
		Shortlink: "https://stspg.io/" + id, CreatedAt: ups[len(ups)-1].CreatedAt, Updates: ups}
}

func newPoller(t *testing.T, bu *bundle, store *ingest.Store, p *page, client *http.Client) *ingest.StatuspagePoller {
	t.Helper()
	if client == nil {
		client = loopbackClient(t)
	}
	sp, err := ingest.NewStatuspagePoller(ingest.StatuspagePollerConfig{
		PollConfig: ingest.PollConfig{Name: "status", Client: client, Now: bu.clock.Now, Interval: time.Minute, MaxBackoff: 10 * time.Minute},
		URL:        p.srv.URL,
	}, store)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// pageWithHistory is a page showing a resolved incident, an open one and
// an announced maintenance.
func pageWithHistory(t *testing.T) *page {
	p := newPage(t)
	p.incidents = []ingest.StatuspageIncident{
		spIncident("old1", "resolved", spUpdate("o1", "investigating", "2025-05-01T10:00:00Z"), spUpdate("o2", "resolved", "2025-05-01T11:00:00Z")),
		spIncident("open1", "identified", spUpdate("a1", "investigating", "2025-05-20T09:00:00Z"), spUpdate("a2", "identified", "2025-05-20T09:30:00Z")),
	}
	m := spIncident("mnt1", "scheduled", spUpdate("m1", "scheduled", "2025-05-19T09:00:00Z"))
	m.ScheduledFor, m.ScheduledUntil = ts("2025-06-01T22:00:00Z"), ts("2025-06-02T02:00:00Z")
	p.maintenances = []ingest.StatuspageIncident{m}
	return p
}

// TestStatuspagePollerPublishesOnlyNewUpdates: the first poll publishes
// the latest update of what is open (not the page's history); unchanged
// lists cost a 304 and publish nothing; a new update of an incident or a
// maintenance (a moved window, the start) is published once, the list
// that did not change answering 304; a restart (new process, same
// bucket) publishes nothing again.
func TestStatuspagePollerPublishesOnlyNewUpdates(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	p := pageWithHistory(t)
	sp := newPoller(t, bu, bu.store("p1"), p, nil)

	rep, err := sp.PollOnce(t.Context())
	if err != nil || !rep.Polled || rep.Published != 2 {
		t.Fatalf("first poll: %+v %v", rep, err)
	}
	if got := ids(bu.events()); !slices.Equal(got, []string{"a2", "m1"}) {
		t.Fatalf("first poll published %v, want the open incident's latest update and the maintenance", got)
	}
	evs := bu.events()
	if evs[0].Sequence != 2 {
		t.Errorf("a2 has sequence %d, want 2 (its place in the incident)", evs[0].Sequence)
	}
	if m := evs[1]; m.Status != incident.Scheduled || m.ScheduledFor == nil || !m.ScheduledFor.Equal(*ts("2025-06-01T22:00:00Z")) || m.Cancelled {
		t.Errorf("maintenance event %+v", m)
	}

	bu.clock.Advance(time.Minute)
	rep, err = sp.PollOnce(t.Context())
	if err != nil || rep.Published != 0 || rep.Status != http.StatusNotModified {
		t.Fatalf("unchanged poll: %+v %v", rep, err)
	}
	if _, nm := p.counts(); nm != 2 {
		t.Fatalf("%d answers were 304, want 2 (ETag and Last-Modified honoured)", nm)
	}

	p.change(func(p *page) {
		p.incidents[1].Updates = append([]ingest.StatuspageUpdate{spUpdate("a3", "monitoring", "2025-05-20T10:00:00Z")}, p.incidents[1].Updates...)
		p.incidents = append(p.incidents, spIncident("new1", "investigating", spUpdate("n1", "investigating", "2025-05-20T11:00:00Z")))
		// The maintenance moves an hour later, with an update saying so.
		m := &p.maintenances[0]
		m.Updates = append([]ingest.StatuspageUpdate{spUpdate("m2", "scheduled", "2025-05-20T11:30:00Z")}, m.Updates...)
		m.ScheduledFor, m.ScheduledUntil = ts("2025-06-01T23:00:00Z"), ts("2025-06-02T03:00:00Z")
	})
	bu.clock.Advance(time.Minute)
	if rep, err = sp.PollOnce(t.Context()); err != nil || rep.Published != 3 {
		t.Fatalf("poll after a change: %+v %v", rep, err)
	}
	if got := ids(bu.events()); !slices.Equal(got, []string{"a2", "m1", "a3", "n1", "m2"}) {
		t.Fatalf("stream holds %v", got)
	}
	if seq := bu.events()[2].Sequence; seq != 3 {
		t.Errorf("a3 has sequence %d, want 3", seq)
	}
	if m := bu.events()[4]; m.Sequence != 2 || m.Status != incident.Scheduled || m.ScheduledFor == nil || !m.ScheduledFor.Equal(*ts("2025-06-01T23:00:00Z")) {
		t.Errorf("the maintenance's move: %+v", m)
	}

	// Only the maintenances change: incidents.json is a 304, the new
	// update of the maintenance is published.
	p.change(func(p *page) {
		m := &p.maintenances[0]
		m.Updates = append([]ingest.StatuspageUpdate{spUpdate("m3", "in_progress", "2025-06-01T23:00:00Z")}, m.Updates...)
	})
	bu.clock.Advance(time.Minute)
	_, before := p.counts()
	if rep, err = sp.PollOnce(t.Context()); err != nil || rep.Published != 1 {
		t.Fatalf("poll after the maintenance changed: %+v %v", rep, err)
	}
	if _, after := p.counts(); after != before+1 {
		t.Fatalf("%d answers were 304, want 1 (incidents.json unchanged)", after-before)
	}
	if got := ids(bu.events()); !slices.Equal(got, []string{"a2", "m1", "a3", "n1", "m2", "m3"}) {
		t.Fatalf("stream holds %v", got)
	}

	// A restart: the server and the process start again; the page no
	// longer honours conditional requests, so the lists come whole.
	bu.restart()
	p.change(func(p *page) { p.conditional = false })
	sp = newPoller(t, bu, bu.store("p1-restarted"), p, nil)
	bu.clock.Advance(2 * time.Minute)
	if rep, err = sp.PollOnce(t.Context()); err != nil || !rep.Polled || rep.Published != 0 {
		t.Fatalf("poll after the restart: %+v %v", rep, err)
	}
	if got := ids(bu.events()); len(got) != 6 {
		t.Fatalf("after the restart the stream holds %v", got)
	}
	if n := bu.publishes.Load(); n != 6 {
		t.Fatalf("published %d times, want 6", n)
	}
	st, err := sp.Status(t.Context())
	if err != nil || st.Published != 6 || st.LastError != "" || len(st.Resources) != 2 || st.Resources[0].ETag == "" || st.Resources[1].LastModified == "" {
		t.Fatalf("status %+v %v", st, err)
	}
}

// TestStatuspagePollerBacksOff: a 500 doubles the delay with each
// failure up to the maximum, a Retry-After longer than that wins, and a
// success brings the interval back; the status shows the errors.
func TestStatuspagePollerBacksOff(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	p := pageWithHistory(t)
	sp := newPoller(t, bu, bu.store("p1"), p, nil)
	p.change(func(p *page) { p.fail = http.StatusInternalServerError })

	for i, want := range []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
		now := bu.clock.Now()
		rep, err := sp.PollOnce(t.Context())
		var he *ingest.HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusInternalServerError {
			t.Fatalf("failure %d: %v, want an HTTPError 500", i+1, err)
		}
		if got := rep.Next.Sub(now); got != want {
			t.Fatalf("failure %d: next poll in %s, want %s", i+1, got, want)
		}
		st, _ := sp.Status(t.Context())
		if st.Failures != i+1 || st.LastStatus != http.StatusInternalServerError || st.LastError == "" || st.NextPoll == nil || !st.NextPoll.Equal(rep.Next) {
			t.Fatalf("failure %d: status %+v", i+1, st)
		}
		bu.clock.Advance(want)
	}
	p.change(func(p *page) { p.fail, p.retryAfter = http.StatusServiceUnavailable, "3600" })
	now := bu.clock.Now()
	if rep, _ := sp.PollOnce(t.Context()); rep.Next.Sub(now) != time.Hour {
		t.Fatalf("Retry-After 3600: next poll in %s", rep.Next.Sub(now))
	}
	if len(bu.events()) != 0 {
		t.Fatal("failed polls published")
	}
	p.change(func(p *page) { p.fail = 0 })
	bu.clock.Advance(time.Hour)
	now = bu.clock.Now()
	rep, err := sp.PollOnce(t.Context())
	if err != nil || rep.Next.Sub(now) != time.Minute || rep.Published != 2 {
		t.Fatalf("recovery: %+v %v", rep, err)
	}
	if st, _ := sp.Status(t.Context()); st.Failures != 0 || st.LastError != "" || st.LastSuccess == nil {
		t.Fatalf("status after recovery %+v", st)
	}
}

// TestStatuspagePollerOneProcessPolls: two processes share a source; the
// lease holder polls, the other does not even ask the page; when the
// holder stops renewing, the other takes over with the shared cursor
// (304s) and publishes nothing twice.
func TestStatuspagePollerOneProcessPolls(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	p := pageWithHistory(t)
	one := newPoller(t, bu, bu.store("p1"), p, nil)
	two := newPoller(t, bu, bu.store("p2"), p, nil)

	if rep, err := one.PollOnce(t.Context()); err != nil || !rep.Polled {
		t.Fatalf("p1: %+v %v", rep, err)
	}
	before, _ := p.counts()
	rep, err := two.PollOnce(t.Context())
	if err != nil || rep.Polled || rep.Holder != "p1" {
		t.Fatalf("p2 polled while p1 holds the lease: %+v %v", rep, err)
	}
	if after, _ := p.counts(); after != before {
		t.Fatalf("p2 asked the page %d times", after-before)
	}
	// p1 stops; its lease runs out after its next planned poll.
	bu.clock.Advance(3 * time.Minute)
	rep, err = two.PollOnce(t.Context())
	if err != nil || !rep.Polled || rep.Published != 0 || rep.Status != http.StatusNotModified {
		t.Fatalf("p2 taking over: %+v %v", rep, err)
	}
	if rep, _ := one.PollOnce(t.Context()); rep.Polled {
		t.Fatal("p1 polled again while p2 holds the lease")
	}
	if got := ids(bu.events()); !slices.Equal(got, []string{"a2", "m1"}) || bu.publishes.Load() != 2 {
		t.Fatalf("stream holds %v after %d publishes", got, bu.publishes.Load())
	}
	st, _ := two.Status(t.Context())
	if st.Holder != "p2" || !st.Polling {
		t.Fatalf("status %+v", st)
	}
}

// TestStatuspagePollerEgressGuard: the page is reached through the SSRF
// guard: a page on a loopback address is refused unless allowed.
func TestStatuspagePollerEgressGuard(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	p := pageWithHistory(t)
	guarded, err := egress.NewClient(egress.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sp := newPoller(t, bu, bu.store("p1"), p, guarded)
	_, err = sp.PollOnce(t.Context())
	var be *egress.BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("poll of a loopback page: %v, want an egress.BlockedError", err)
	}
	if n, _ := p.counts(); n != 0 || len(bu.events()) != 0 {
		t.Fatalf("the page was reached (%d requests)", n)
	}
}

// TestWebhookAndPollerShareRecords: an update received by webhook is not
// published again by the poller of the same page.
func TestWebhookAndPollerShareRecords(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	store := bu.store("p1")
	r := newReceiver(t, bu, store, ingest.Mapping{})
	if code, _ := r.post(t, testToken, fixture(t, "incident-3.json")); code != http.StatusOK {
		t.Fatal(code)
	}
	read := func(name string) ingest.StatuspageIncident {
		var payload ingest.StatuspagePayload
		if err := json.Unmarshal(fixture(t, name), &payload); err != nil {
			t.Fatal(err)
		}
		return *payload.Incident
	}
	p := newPage(t)
	p.incidents = []ingest.StatuspageIncident{read("incident-3.json")}
	sp := newPoller(t, bu, store, p, nil)
	if rep, err := sp.PollOnce(t.Context()); err != nil || rep.Published != 0 {
		t.Fatalf("first poll of what the receiver published: %+v %v", rep, err)
	}
	p.change(func(p *page) { p.incidents[0] = read("incident-4.json") })
	bu.clock.Advance(time.Minute)
	if rep, err := sp.PollOnce(t.Context()); err != nil || rep.Published != 1 {
		t.Fatalf("poll of the fourth update: %+v %v", rep, err)
	}
	got := ids(bu.events())
	if !slices.Equal(got, []string{"u1d9qk0w7z3a", "u2h4mn6r8t0b", "u3c5vx7y9p1c", "u4j6kl8m0n2d"}) {
		t.Fatalf("stream holds %v", got)
	}
}

// TestPollerConfig refuses bad configurations.
func TestPollerConfig(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	store := bu.store("p1")
	client := loopbackClient(t)
	for _, tc := range []struct {
		name string
		cfg  ingest.StatuspagePollerConfig
	}{
		{"no url", ingest.StatuspagePollerConfig{PollConfig: ingest.PollConfig{Name: "a", Client: client}}},
		{"ftp url", ingest.StatuspagePollerConfig{PollConfig: ingest.PollConfig{Name: "a", Client: client}, URL: "ftp://status.example.com"}},
		{"credentials", ingest.StatuspagePollerConfig{PollConfig: ingest.PollConfig{Name: "a", Client: client}, URL: "https://u:p@status.example.com"}},
		{"bad name", ingest.StatuspagePollerConfig{PollConfig: ingest.PollConfig{Name: "a.b", Client: client}, URL: "https://status.example.com"}},
		{"no client", ingest.StatuspagePollerConfig{PollConfig: ingest.PollConfig{Name: "a"}, URL: "https://status.example.com"}},
		{"tiny interval", ingest.StatuspagePollerConfig{PollConfig: ingest.PollConfig{Name: "a", Client: client, Interval: time.Millisecond}, URL: "https://status.example.com"}},
		{"bad map", ingest.StatuspagePollerConfig{PollConfig: ingest.PollConfig{Name: "a", Client: client}, URL: "https://status.example.com",
			Mapping: ingest.Mapping{Components: map[string]string{"x": "UPPER"}}}},
	} {
		if _, err := ingest.NewStatuspagePoller(tc.cfg, store); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// TestPollerRunReleasesItsLease: Run polls at once; when its context ends
// it returns and gives the lease up, so another process polls right away.
func TestPollerRunReleasesItsLease(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	p := pageWithHistory(t)
	sp := newPoller(t, bu, bu.store("p1"), p, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(bu.events()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not poll")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	other := newPoller(t, bu, bu.store("p2"), p, nil)
	if rep, err := other.PollOnce(t.Context()); err != nil || !rep.Polled {
		t.Fatalf("after Run stopped, another process could not poll: %+v %v", rep, err)
	}
}

// TestStatuspagePollerCorruptCursor: a cursor that does not decode is
// replaced; the poll goes on as for a page already read (what is new is
// published, what was published is not again).
func TestStatuspagePollerCorruptCursor(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	p := pageWithHistory(t)
	sp := newPoller(t, bu, bu.store("p1"), p, nil)
	if _, err := sp.PollOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	kv, err := bu.js.KeyValue(t.Context(), ingest.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "cursor.status", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	p.change(func(p *page) {
		p.incidents = append(p.incidents, spIncident("new2", "resolved", spUpdate("r1", "investigating", "2025-05-20T11:00:00Z"), spUpdate("r2", "resolved", "2025-05-20T11:20:00Z")))
	})
	bu.clock.Advance(time.Minute)
	rep, err := sp.PollOnce(t.Context())
	if err != nil || rep.Published != 2 {
		t.Fatalf("poll with a corrupt cursor: %+v %v", rep, err)
	}
	if got := ids(bu.events()); !slices.Equal(got, []string{"a2", "m1", "r1", "r2"}) {
		t.Fatalf("stream holds %v", got)
	}
	if st, err := sp.Status(t.Context()); err != nil || len(st.Resources) != 2 || st.Resources[0].ETag == "" {
		t.Fatalf("cursor not rewritten: %+v %v", st, err)
	}
}

// TestStatuspagePollerMaintenanceWindowMovedWithoutUpdate: the served
// scheduled-maintenances.json moves the maintenance's window with no new
// update. The next poll publishes one synthetic announcement of the new
// window; polls after it (304 or whole lists), and a restart, publish
// nothing more.
func TestStatuspagePollerMaintenanceWindowMovedWithoutUpdate(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	p := pageWithHistory(t)
	sp := newPoller(t, bu, bu.store("p1"), p, nil)
	if rep, err := sp.PollOnce(t.Context()); err != nil || rep.Published != 2 {
		t.Fatalf("first poll: %+v %v", rep, err)
	}
	p.change(func(p *page) {
		m := &p.maintenances[0]
		m.ScheduledFor, m.ScheduledUntil, m.UpdatedAt = ts("2025-06-08T22:00:00Z"), ts("2025-06-09T02:00:00Z"), ts("2025-05-20T12:30:00Z")
	})
	bu.clock.Advance(time.Minute)
	if rep, err := sp.PollOnce(t.Context()); err != nil || rep.Published != 1 {
		t.Fatalf("poll after the window moved: %+v %v", rep, err)
	}
	bu.clock.Advance(time.Minute)
	if rep, err := sp.PollOnce(t.Context()); err != nil || rep.Published != 0 || rep.Status != http.StatusNotModified {
		t.Fatalf("unchanged poll: %+v %v", rep, err)
	}
	p.change(func(p *page) { p.conditional = false })
	bu.clock.Advance(time.Minute)
	if rep, err := sp.PollOnce(t.Context()); err != nil || rep.Published != 0 {
		t.Fatalf("poll of the whole lists: %+v %v", rep, err)
	}
	bu.restart()
	sp = newPoller(t, bu, bu.store("p1-restarted"), p, nil)
	bu.clock.Advance(2 * time.Minute)
	if rep, err := sp.PollOnce(t.Context()); err != nil || !rep.Polled || rep.Published != 0 {
		t.Fatalf("poll after the restart: %+v %v", rep, err)
	}
	evs := bu.events()
	if len(evs) != 3 || bu.publishes.Load() != 3 {
		t.Fatalf("stream holds %v after %d publishes", ids(evs), bu.publishes.Load())
	}
	ev := evs[2]
	if !strings.HasPrefix(ev.ID, "m1~window-") || ev.IncidentID != "mnt1" || ev.Sequence != 2 || ev.Status != incident.Scheduled ||
		ev.Body.Plain != "Update m1" || !ev.ScheduledFor.Equal(*ts("2025-06-08T22:00:00Z")) || !ev.ScheduledUntil.Equal(*ts("2025-06-09T02:00:00Z")) {
		t.Fatalf("synthetic update %+v", ev)
	}
}

// TestStatuspagePollerFailedFirstPoll: a first poll that reads nothing
// (the page answers 500) leaves the page unread, and the next successful
// poll is the first read: the history it finds is recorded, the latest
// update of what is open published. That baseline happens once: updates
// that appear after it are all published.
func TestStatuspagePollerFailedFirstPoll(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	p := pageWithHistory(t)
	sp := newPoller(t, bu, bu.store("p1"), p, nil)
	p.change(func(p *page) { p.fail = http.StatusInternalServerError })
	if _, err := sp.PollOnce(t.Context()); err == nil {
		t.Fatal("a poll of a failing page succeeded")
	}
	p.change(func(p *page) {
		p.fail = 0
		p.incidents[1].Updates = append([]ingest.StatuspageUpdate{spUpdate("a3", "monitoring", "2025-05-20T10:00:00Z")}, p.incidents[1].Updates...)
	})
	bu.clock.Advance(2 * time.Minute)
	if rep, err := sp.PollOnce(t.Context()); err != nil || rep.Published != 2 {
		t.Fatalf("first successful poll: %+v %v", rep, err)
	}
	if got := ids(bu.events()); !slices.Equal(got, []string{"a3", "m1"}) {
		t.Fatalf("first successful poll published %v, want the latest update of each open incident", got)
	}
	p.change(func(p *page) {
		p.incidents[1].Updates = append([]ingest.StatuspageUpdate{spUpdate("a5", "resolved", "2025-05-20T10:20:00Z"), spUpdate("a4", "monitoring", "2025-05-20T10:10:00Z")}, p.incidents[1].Updates...)
	})
	bu.clock.Advance(time.Minute)
	if rep, err := sp.PollOnce(t.Context()); err != nil || rep.Published != 2 {
		t.Fatalf("next poll: %+v %v", rep, err)
	}
	if got := ids(bu.events()); !slices.Equal(got, []string{"a3", "m1", "a4", "a5"}) {
		t.Fatalf("stream holds %v", got)
	}
}

// TestStatuspagePollerFirstReadInterrupted: the first read of
// incidents.json records one incident (its history skipped, its latest
// update published) and fails on another (JetStream refuses it), so the
// list stays unread and the next poll is a first read again. The
// incident already recorded is past its baseline: the two updates it got
// meanwhile are both published, not taken for history; the one that
// failed has its latest update published.
func TestStatuspagePollerFirstReadInterrupted(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	var failing atomic.Bool
	failing.Store(true)
	store, err := ingest.OpenStore(t.Context(), bu.js, func(ctx context.Context, ev *incident.Event) error {
		if failing.Load() && ev.IncidentID == "open2" {
			return errUnavailable
		}
		return bu.publish(ctx, ev)
	}, ingest.StoreConfig{Holder: "p1", Now: bu.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := pageWithHistory(t)
	p.incidents = append(p.incidents, spIncident("open2", "investigating", spUpdate("b1", "investigating", "2025-05-20T09:40:00Z"), spUpdate("b2", "identified", "2025-05-20T09:50:00Z")))
	sp := newPoller(t, bu, store, p, nil)
	if _, err := sp.PollOnce(t.Context()); !errors.Is(err, errUnavailable) {
		t.Fatalf("first poll: %v, want the publish failure", err)
	}
	if got := ids(bu.events()); !slices.Equal(got, []string{"a2", "m1"}) {
		t.Fatalf("first poll published %v", got)
	}
	p.change(func(p *page) {
		p.incidents[1].Updates = append([]ingest.StatuspageUpdate{spUpdate("a4", "monitoring", "2025-05-20T10:10:00Z"), spUpdate("a3", "identified", "2025-05-20T10:00:00Z")}, p.incidents[1].Updates...)
	})
	failing.Store(false)
	bu.clock.Advance(2 * time.Minute)
	if rep, err := sp.PollOnce(t.Context()); err != nil || rep.Published != 3 {
		t.Fatalf("second poll: %+v %v", rep, err)
	}
	if got := ids(bu.events()); !slices.Equal(got, []string{"a2", "m1", "a3", "a4", "b2"}) {
		t.Fatalf("stream holds %v, want a3 and a4 (new since the first read) and b2", got)
	}
	for _, ev := range bu.events()[2:4] {
		if ev.Sequence != map[string]int64{"a3": 3, "a4": 4}[ev.ID] {
			t.Errorf("%s has sequence %d", ev.ID, ev.Sequence)
		}
	}
}
