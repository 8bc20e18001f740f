package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/ingest"
)

// clock is a test clock moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 5, 20, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// bundle is one test's Herald: an embedded NATS server with the
// dispatcher's streams, a clock, and the publisher `herald publish` uses.
type bundle struct {
	t     *testing.T
	dir   string
	b     *broker.Broker
	js    jetstream.JetStream
	clock *clock
	// publishes counts the publisher's calls (not only what the stream
	// kept).
	publishes atomic.Int64
}

func setup(t *testing.T) *bundle {
	t.Helper()
	bu := &bundle{t: t, dir: t.TempDir(), clock: newClock()}
	bu.open()
	return bu
}

// open starts (or restarts) the embedded server on the bundle's data.
func (bu *bundle) open() {
	t := bu.t
	t.Helper()
	b, err := broker.Open(t.Context(), broker.Config{DataDir: bu.dir, Listen: "none"})
	if err != nil {
		t.Fatal(err)
	}
	bu.b, bu.js = b, b.JS
	t.Cleanup(b.Close)
	if _, err := dispatcher.Setup(t.Context(), b.JS, dispatcher.Config{}); err != nil {
		t.Fatal(err)
	}
}

// restart stops the server and starts it again on the same data.
func (bu *bundle) restart() {
	bu.b.Close()
	bu.open()
}

// publish is the path of `herald publish`.
func (bu *bundle) publish(ctx context.Context, ev *incident.Event) error {
	bu.publishes.Add(1)
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = dispatcher.PublishEvent(ctx, bu.js, data, 0)
	return err
}

// store opens the ingest store as the process holder.
func (bu *bundle) store(holder string) *ingest.Store {
	bu.t.Helper()
	s, err := ingest.OpenStore(bu.t.Context(), bu.js, bu.publish, ingest.StoreConfig{Holder: holder, Now: bu.clock.Now})
	if err != nil {
		bu.t.Fatal(err)
	}
	return s
}

// events returns every event of the INCIDENTS stream, in order.
func (bu *bundle) events() []incident.Event {
	t := bu.t
	t.Helper()
	s, err := bu.js.Stream(t.Context(), dispatcher.StreamIncidents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []incident.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := incident.Decode(m.Data, 0)
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		if got := m.Header.Get("Nats-Msg-Id"); got != ev.ID {
			t.Fatalf("stream message %d: Nats-Msg-Id %q, want the event id %q", seq, got, ev.ID)
		}
		out = append(out, *ev)
	}
	return out
}

// ids returns the events' ids.
func ids(evs []incident.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// fixture reads testdata/statuspage/name.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "statuspage", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// loopbackClient is the SSRF-guarded client, allowed to reach the test
// servers on 127.0.0.1.
func loopbackClient(t testing.TB) *http.Client {
	t.Helper()
	c, err := egress.NewClient(egress.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
