package dispatcher

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/channels/outbox"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/internal/eventtest"
	"github.com/heraldhq/herald/internal/natstest"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// testSecret is a valid Standard Webhooks secret (24 random bytes).
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// testBundle is a running Herald: an embedded nats-server with JetStream, a
// dispatcher with the real webhook channel and outboxes, and a webhook
// receiver that verifies signatures.
type testBundle struct {
	t       *testing.T
	ctx     context.Context
	ns      *server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	d       *Dispatcher
	recv    *receiver
	outbox  string
	logs    *channelstest.SyncBuffer
	catalog *incident.Catalog
	stop    func()
	// running is closed when the dispatcher's Run returns (nil: not run).
	running chan struct{}
}

// run runs the dispatcher (set up with noRun) until the test stops it, and
// waits until it is ready.
func (b *testBundle) run() {
	b.t.Helper()
	b.running = make(chan struct{})
	go func() {
		defer close(b.running)
		if err := b.d.Run(b.ctx); err != nil {
			b.t.Errorf("Run: %v", err)
		}
	}()
	b.waitFor("dispatcher ready", 10*time.Second, b.d.Ready)
}

type bundleOpts struct {
	cfg      func(*Config)
	webhook  func(*webhook.Config)
	noRun    bool
	channels map[string]channels.Channel
	// templates adjusts the renderer's configuration.
	templates func(*templates.Config)
	// server, when set, is the nats-server to use (a second Herald
	// process on the same server); otherwise the bundle starts its own.
	server *server.Server
}

// startNATS runs an embedded JetStream server for one test.
func startNATS(t testing.TB) *server.Server { return natstest.Start(t) }

func setup(t *testing.T, opts bundleOpts) *testBundle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ns := opts.server
	if ns == nil {
		ns = startNATS(t)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	logs := &channelstest.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	catalog, err := incident.NewCatalog(incident.DefaultComponents())
	if err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	d := newTestDispatcher(t, ctx, nc, logger, catalog, outDir, opts)
	b := &testBundle{t: t, ctx: ctx, ns: ns, nc: nc, js: js, d: d, recv: newReceiver(t), outbox: outDir, logs: logs, catalog: catalog}
	if !opts.noRun {
		b.run()
	}
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cancel()
			if b.running != nil {
				<-b.running
			}
			nc.Close()
		})
	}
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("dispatcher logs:\n%s", logs.String())
		}
		for _, leak := range []string{testSecret, "MfKQ9r8G"} {
			if strings.Contains(logs.String(), leak) {
				t.Errorf("a secret leaked into the logs")
			}
		}
	})
	return b
}

// newTestDispatcher builds a dispatcher on nc as setup configures it: the
// real webhook channel, outboxes in outDir for the others.
func newTestDispatcher(t *testing.T, ctx context.Context, nc *nats.Conn, logger *slog.Logger, catalog *incident.Catalog, outDir string, opts bundleOpts) *Dispatcher {
	t.Helper()
	tcfg := templates.Config{Components: catalog, PublicURL: "https://herald.example"}
	if opts.templates != nil {
		opts.templates(&tcfg)
	}
	renderer, err := templates.New(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	wcfg := webhook.Config{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Timeout: 5 * time.Second, Logger: logger}
	if opts.webhook != nil {
		opts.webhook(&wcfg)
	}
	wh, err := webhook.New(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	chans := map[string]channels.Channel{channels.Webhook: wh}
	for _, name := range []string{channels.Email, channels.SMS, channels.Slack} {
		ob, err := outbox.New(outbox.Config{Dir: outDir, Channel: name})
		if err != nil {
			t.Fatal(err)
		}
		chans[name] = ob
	}
	for name, ch := range opts.channels {
		chans[name] = ch
	}
	none := 0.0
	cfg := Config{
		SecretKey:       secret.Value(strings.Repeat("k", 32)),
		Logger:          logger,
		Channels:        map[string]ChannelConfig{},
		ShutdownTimeout: 5 * time.Second,
	}
	for _, name := range channels.Names() {
		cfg.Channels[name] = ChannelConfig{Retry: Backoff{Base: 200 * time.Millisecond, Max: time.Second, Min: 50 * time.Millisecond, Jitter: &none}}
	}
	if opts.cfg != nil {
		opts.cfg(&cfg)
	}
	d, err := New(ctx, cfg, Deps{Conn: nc, Channels: chans, Renderer: renderer, Catalog: catalog,
		Rules: subscribers.Rules{Components: catalog, AllowHTTPWebhooks: true}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// peer runs a second Herald process on the bundle's nats-server: its own
// connection and dispatcher (configured by opts as setup configures the
// first), sharing the streams, buckets and consumers. Its logs go to the
// bundle's, marked process=peer. It stops with the test or when stop is
// called.
func (b *testBundle) peer(opts bundleOpts) (d *Dispatcher, stop func()) {
	b.t.Helper()
	nc, err := nats.Connect(b.nc.ConnectedUrl())
	if err != nil {
		b.t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("process", "peer")
	ctx, cancel := context.WithCancel(b.ctx)
	d = newTestDispatcher(b.t, ctx, nc, logger, b.catalog, b.outbox, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			b.t.Errorf("peer Run: %v", err)
		}
	}()
	b.waitFor("the peer ready", 10*time.Second, d.Ready)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			nc.Close()
		})
	}
	b.t.Cleanup(stop)
	return d, stop
}

// settled waits until every job is done: DELIVERIES holds nothing (jobs
// are acknowledged, and leave the work queue, once their writes are
// stored).
func (b *testBundle) settled() {
	b.t.Helper()
	b.waitFor("every job done", 30*time.Second, func() bool {
		info, err := b.d.topo.Deliveries.Info(b.ctx)
		return err == nil && info.State.Msgs == 0
	})
}

// waitFor polls cond until it holds or the timeout expires.
func (b *testBundle) waitFor(what string, timeout time.Duration, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// putSubscriber stores a subscriber and waits until the index has it.
func (b *testBundle) putSubscriber(s *subscribers.Subscriber) {
	b.t.Helper()
	if _, err := b.d.store.Put(b.ctx, s); err != nil {
		b.t.Fatalf("put %s: %v", s.ID, err)
	}
	b.waitFor("index to see "+s.ID, 5*time.Second, func() bool {
		_, ok := b.d.index.Revision(s.ID)
		return ok
	})
}

// webhookSubscriber returns a subscriber with one webhook endpoint on the
// receiver's path.
func (b *testBundle) webhookSubscriber(id, path string, components ...string) *subscribers.Subscriber {
	return &subscribers.Subscriber{
		ID: id, Name: "Merchant " + id, Locale: "fr-FR", Timezone: "Europe/Paris", Components: components,
		Endpoints: []subscribers.Endpoint{{ID: "wh", Channel: channels.Webhook, URL: b.recv.url(path), Secret: testSecret}},
	}
}

// publish publishes one event and returns its result.
// parked returns the state of channel's consumer of parked jobs.
func (b *testBundle) parked(channel string) *jetstream.ConsumerInfo {
	b.t.Helper()
	cons, err := b.d.topo.Deliveries.Consumer(b.ctx, parkedConsumer(channel))
	if err != nil {
		b.t.Fatal(err)
	}
	info, err := cons.Info(b.ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	return info
}

func (b *testBundle) publish(ev string) *PublishResult {
	b.t.Helper()
	res, err := PublishEvent(b.ctx, b.js, []byte(ev), 0)
	if err != nil {
		b.t.Fatalf("publish: %v", err)
	}
	return res
}

// records returns the delivery log of a subscriber.
func (b *testBundle) records(sub string) []Record {
	b.t.Helper()
	recs, err := b.d.log.list(b.ctx, Query{SubscriberID: sub, Limit: 1000})
	if err != nil {
		b.t.Fatal(err)
	}
	return recs
}

// hasOutcome reports whether the subscriber's log holds outcome.
func (b *testBundle) hasOutcome(sub string, o Outcome) bool {
	for _, r := range b.records(sub) {
		if r.Outcome == o {
			return true
		}
	}
	return false
}

// corpusEvent returns the corpus update with the given id, as JSON.
func corpusEvent(t testing.TB, id string) string {
	t.Helper()
	data, err := os.ReadFile("../examples/incidents.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, `"id": "`+id+`"`) {
			return line
		}
	}
	t.Fatalf("no corpus event %s", id)
	return ""
}

// event builds a small event (eventtest.Event).
func event(incidentID string, seq int, status string, extra ...string) string {
	return eventtest.Event(incidentID, seq, status, extra...)
}

// hit is one request the receiver got.
type hit struct {
	path     string
	id       string
	at       time.Time
	body     []byte
	verified error
	status   int
}

// receiver is a merchant's webhook endpoint: it verifies every signature with
// the Standard Webhooks library and answers as each path's script says.
type receiver struct {
	t   testing.TB
	srv *httptest.Server
	wh  *standardwebhooks.Webhook

	mu      sync.Mutex
	hits    []hit
	scripts map[string]func(n int, w http.ResponseWriter) // by path; n is the 1-based request count for the path
	counts  map[string]int
}

func newReceiver(t testing.TB) *receiver {
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, wh: wh, scripts: map[string]func(int, http.ResponseWriter){}, counts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url(path string) string { return r.srv.URL + path }

// script sets how the receiver answers on path.
func (r *receiver) script(path string, fn func(n int, w http.ResponseWriter)) {
	r.mu.Lock()
	r.scripts[path] = fn
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	h := hit{path: req.URL.Path, id: req.Header.Get("webhook-id"), at: time.Now(), body: body}
	h.verified = r.wh.Verify(body, req.Header)
	r.mu.Lock()
	r.counts[h.path]++
	n := r.counts[h.path]
	fn := r.scripts[h.path]
	r.mu.Unlock()
	h.status = http.StatusOK
	if fn != nil {
		rec := httptest.NewRecorder()
		fn(n, rec)
		h.status = rec.Code
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	} else {
		w.WriteHeader(http.StatusOK)
	}
	r.mu.Lock()
	r.hits = append(r.hits, h)
	r.mu.Unlock()
}

// hitsFor returns the requests received on path.
func (r *receiver) hitsFor(path string) []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hit
	for _, h := range r.hits {
		if h.path == path {
			out = append(out, h)
		}
	}
	return out
}

// delivered counts the 2xx answers given on path.
func (r *receiver) delivered(path string) int {
	n := 0
	for _, h := range r.hitsFor(path) {
		if h.status >= 200 && h.status < 300 {
			n++
		}
	}
	return n
}
