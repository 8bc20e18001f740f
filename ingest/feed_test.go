package ingest_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/ingest"
)

// feedServer serves a feed file with an ETag, honouring If-None-Match.
type feedServer struct {
	srv *httptest.Server

	mu          sync.Mutex
	body        string
	contentType string
	notModified int
}

func newFeedServer(t *testing.T, file, contentType string) *feedServer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "feed", file))
	if err != nil {
		t.Fatal(err)
	}
	fs := &feedServer{body: string(data), contentType: contentType}
	fs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		etag := `"` + strings.Repeat("x", len(fs.body)%7+1) + `-` + string(rune('a'+len(fs.body)%26)) + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			fs.notModified++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", fs.contentType)
		_, _ = w.Write([]byte(fs.body))
	}))
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *feedServer) edit(f func(string) string) {
	fs.mu.Lock()
	fs.body = f(fs.body)
	fs.mu.Unlock()
}

func newFeedPoller(t *testing.T, bu *bundle, store *ingest.Store, url string) *ingest.FeedPoller {
	t.Helper()
	fp, err := ingest.NewFeedPoller(ingest.FeedPollerConfig{
		PollConfig: ingest.PollConfig{Name: "feed", Client: loopbackClient(t), Now: bu.clock.Now},
		URL:        url, Components: []string{"payouts"}, Priority: incident.P3,
	}, store)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// TestFeedPollerAtom: the first read publishes the open entry only; an
// unchanged feed is a 304; a new revision of the entry (a later updated
// date) is published once, as the next update of the same incident; a
// restart publishes nothing.
func TestFeedPollerAtom(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	fs := newFeedServer(t, "status.atom", "application/atom+xml")
	fp := newFeedPoller(t, bu, bu.store("p1"), fs.srv.URL+"/history.atom")

	rep, err := fp.PollOnce(t.Context())
	if err != nil || rep.Published != 1 {
		t.Fatalf("first poll: %+v %v", rep, err)
	}
	evs := bu.events()
	ev := evs[0]
	if ev.Status != incident.Identified || ev.Title.Plain != "Delayed payouts" || ev.URL != "https://status.example.com/incidents/open24511" ||
		!strings.HasPrefix(ev.Body.Plain, "May 20, 09:30 UTC\nIdentified - Payouts are delayed") || ev.Priority != incident.P3 ||
		!slices.Equal(ev.Components, []string{"payouts"}) || ev.Sequence != 1 || !strings.HasPrefix(ev.IncidentID, "feed-") {
		t.Fatalf("event %+v", ev)
	}
	bu.clock.Advance(time.Minute)
	if rep, err = fp.PollOnce(t.Context()); err != nil || rep.Published != 0 || rep.Status != http.StatusNotModified {
		t.Fatalf("unchanged feed: %+v %v", rep, err)
	}

	fs.edit(func(s string) string {
		s = strings.Replace(s, "<updated>2025-05-20T09:30:00Z</updated>\n    <link", "<updated>2025-05-20T10:15:00Z</updated>\n    <link", 1)
		return strings.Replace(s, "&lt;p&gt;&lt;small&gt;May &lt;var data-var='date'&gt;20&lt;/var&gt;, 09:30",
			"&lt;p&gt;&lt;strong&gt;Resolved&lt;/strong&gt; - Payouts are back.&lt;/p&gt;&lt;p&gt;&lt;small&gt;May &lt;var data-var='date'&gt;20&lt;/var&gt;, 09:30", 1)
	})
	bu.clock.Advance(time.Minute)
	if rep, err = fp.PollOnce(t.Context()); err != nil || rep.Published != 1 {
		t.Fatalf("new revision: %+v %v", rep, err)
	}
	evs = bu.events()
	if len(evs) != 2 || evs[1].IncidentID != ev.IncidentID || evs[1].Sequence != 2 || evs[1].Status != incident.Resolved || evs[1].ID == ev.ID {
		t.Fatalf("events %+v", evs)
	}

	bu.restart()
	fp = newFeedPoller(t, bu, bu.store("p2"), fs.srv.URL+"/history.atom")
	fs.edit(func(s string) string { return s + "\n" }) // another ETag: the feed comes whole
	bu.clock.Advance(5 * time.Minute)
	if rep, err = fp.PollOnce(t.Context()); err != nil || rep.Published != 0 || rep.Status != http.StatusOK {
		t.Fatalf("after a restart: %+v %v", rep, err)
	}
	if n := bu.publishes.Load(); n != 2 {
		t.Fatalf("published %d times, want 2", n)
	}
}

// TestFeedPollerRSS: RSS items, identified by their guid, statuses read
// from French text; a new item is published once.
func TestFeedPollerRSS(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	fs := newFeedServer(t, "status.rss", "application/rss+xml")
	fp := newFeedPoller(t, bu, bu.store("p1"), fs.srv.URL+"/feed.rss")

	if rep, err := fp.PollOnce(t.Context()); err != nil || rep.Published != 1 {
		t.Fatalf("first poll: %+v %v", rep, err)
	}
	ev := bu.events()[0]
	if ev.Title.Plain != "Portail marchand indisponible" || ev.Status != incident.Investigating ||
		ev.Body.Plain != "Nous enquêtons sur une indisponibilité du portail." || ev.PublishedAt == nil {
		t.Fatalf("event %+v", ev)
	}
	fs.edit(func(s string) string {
		return strings.Replace(s, "<item>", `<item>
      <title>Virements retardés</title>
      <description>Incident résolu.</description>
      <guid isPermaLink="false">payouts-9</guid>
      <pubDate>Tue, 20 May 2025 12:00:00 +0000</pubDate>
    </item>
    <item>`, 1)
	})
	bu.clock.Advance(time.Minute)
	if rep, err := fp.PollOnce(t.Context()); err != nil || rep.Published != 1 {
		t.Fatalf("new item: %+v %v", rep, err)
	}
	evs := bu.events()
	if len(evs) != 2 || evs[1].Title.Plain != "Virements retardés" || evs[1].Status != incident.Resolved || evs[1].URL != "" {
		t.Fatalf("events %+v", evs)
	}
	st, err := fp.Status(t.Context())
	if err != nil || st.Kind != "feed" || st.Published != 2 || len(st.Resources) != 1 || st.Resources[0].ETag == "" {
		t.Fatalf("status %+v %v", st, err)
	}
}

// TestFeedPollerRefusesWhatIsNotAFeed: an HTML page is an error, the
// poller backs off and publishes nothing.
func TestFeedPollerRefusesWhatIsNotAFeed(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html><body>Maintenance page</body></html>"))
	}))
	t.Cleanup(srv.Close)
	fp := newFeedPoller(t, bu, bu.store("p1"), srv.URL)
	now := bu.clock.Now()
	rep, err := fp.PollOnce(t.Context())
	if err == nil || rep.Next.Sub(now) != 2*time.Minute {
		t.Fatalf("%+v %v", rep, err)
	}
	if len(bu.events()) != 0 {
		t.Fatal("published")
	}
}

// TestFeedConfig refuses bad feed configurations.
func TestFeedConfig(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	store := bu.store("p1")
	base := ingest.PollConfig{Name: "f", Client: loopbackClient(t)}
	for _, tc := range []struct {
		name string
		cfg  ingest.FeedPollerConfig
	}{
		{"no url", ingest.FeedPollerConfig{PollConfig: base}},
		{"bad component", ingest.FeedPollerConfig{PollConfig: base, URL: "https://x.example/f", Components: []string{"Bad"}}},
		{"bad priority", ingest.FeedPollerConfig{PollConfig: base, URL: "https://x.example/f", Priority: "P0"}},
		{"scheduled status", ingest.FeedPollerConfig{PollConfig: base, URL: "https://x.example/f", Statuses: map[string]incident.Status{"planned": incident.Scheduled}}},
		{"unknown status", ingest.FeedPollerConfig{PollConfig: base, URL: "https://x.example/f", Statuses: map[string]incident.Status{"down": "broken"}}},
		{"bad default", ingest.FeedPollerConfig{PollConfig: base, URL: "https://x.example/f", DefaultStatus: "nope"}},
	} {
		if _, err := ingest.NewFeedPoller(tc.cfg, store); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
