package dispatcher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/channels/outbox"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// benchDispatcher builds a dispatcher on an embedded, file-backed JetStream
// server, without log output.
func benchDispatcher(b *testing.B, cfg func(*Config), wcfg func(*webhook.Config)) (*Dispatcher, *nats.Conn, context.Context) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	ns := startNATS(b)
	var asyncErrs atomic.Int64
	var firstErr atomic.Value
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
		if asyncErrs.Add(1) == 1 {
			firstErr.Store(fmt.Sprintf("%v (subject %s)", err, s.Subject))
		}
	}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if n := asyncErrs.Load(); n > 0 {
			b.Logf("%d asynchronous NATS errors during the run (slow consumers...); first: %v", n, firstErr.Load())
		}
	})
	b.Cleanup(nc.Close)
	catalog, _ := incident.NewCatalog(incident.DefaultComponents())
	renderer, err := templates.New(templates.Config{Components: catalog, PublicURL: "https://herald.example"})
	if err != nil {
		b.Fatal(err)
	}
	wc := webhook.Config{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	if wcfg != nil {
		wcfg(&wc)
	}
	wh, err := webhook.New(wc)
	if err != nil {
		b.Fatal(err)
	}
	chans := map[string]channels.Channel{channels.Webhook: wh}
	for _, name := range []string{channels.Email, channels.SMS, channels.Slack} {
		chans[name], _ = outbox.New(outbox.Config{Dir: b.TempDir(), Channel: name})
	}
	// Warnings and errors are kept and summed up at the end: a benchmark
	// run that retried or redelivered says so.
	warnings := &channelstest.SyncBuffer{}
	b.Cleanup(func() {
		if n := strings.Count(warnings.String(), "\n"); n > 0 {
			lines := strings.SplitN(warnings.String(), "\n", 6)
			b.Logf("%d warnings during the run; first ones:\n%s", n, strings.Join(lines[:min(5, len(lines))], "\n"))
		}
	})
	c := Config{SecretKey: secret.Value(strings.Repeat("k", 32)), Logger: slog.New(slog.NewTextHandler(warnings, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if cfg != nil {
		cfg(&c)
	}
	d, err := New(ctx, c, Deps{Conn: nc, Channels: chans, Renderer: renderer, Catalog: catalog,
		Rules: subscribers.Rules{Components: catalog, AllowHTTPWebhooks: true}})
	if err != nil {
		b.Fatal(err)
	}
	return d, nc, ctx
}

// benchAudience fills the index with n subscribers of 1.5 endpoints each
// (every other one has a second, email endpoint), all matching.
func benchAudience(d *Dispatcher, n int, url func(i int) string) {
	for i := range n {
		s := &subscribers.Subscriber{ID: fmt.Sprintf("m%07d", i), Locale: "fr-FR",
			Endpoints: []subscribers.Endpoint{{ID: "wh", Channel: channels.Webhook, URL: url(i), Secret: testSecret}}}
		if i%2 == 0 {
			s.Endpoints = append(s.Endpoints, subscribers.Endpoint{ID: "mail", Channel: channels.Email, Address: fmt.Sprintf("ops%d@example.com", i)})
		}
		d.index.Upsert(s, 1)
	}
}

// BenchmarkFanout fans one update out to 100 000 subscribers (150 000
// targets, in batches) into DELIVERIES, and, in the same run, publishes one
// message per target with Nats-Msg-Id as raw async JetStream publishes: the
// first round's one-job-per-target fan-out at its fastest, the baseline.
// It reports the targets fanned out per second and the ratio.
func BenchmarkFanout(b *testing.B) {
	const subs = 100_000
	d, nc, ctx := benchDispatcher(b, nil, nil)
	benchAudience(d, subs, func(i int) string { return fmt.Sprintf("https://h%d.example/hook", i%100) })
	fo, err := newFanout(d)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := d.topo.Incidents.Consumer(ctx, fanoutConsumer(partitionOf("BENCH")))
	if err != nil {
		b.Fatal(err)
	}
	rawJS, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	purge := func() {
		if err := d.topo.Deliveries.Purge(ctx); err != nil {
			b.Fatal(err)
		}
	}
	// The baseline's messages: one per target, with the target's id.
	ev, _ := incident.Decode([]byte(event("BENCH", 1, "investigating")), 0)
	enc, _ := newJobEncoder(ev, 1, "P3")
	targets := d.index.Audience(subscribers.Query{Components: ev.Components, Priority: "P3", Status: ev.Status})
	var batches uint64
	for _, n := range fo.batchCounts(targets) {
		batches += uint64(n)
	}
	var herald, raw time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		purge()
		msgs := make([]*nats.Msg, len(targets))
		for k, t := range targets {
			id := fmt.Sprintf("raw-%d-%d", i, k)
			msgs[k] = &nats.Msg{Subject: deliverySubject(t.Channel), Data: enc.encode(nil, DeliveryID(id, t.SubscriberID, t.EndpointID), t), Header: nats.Header{hdrMsgID: []string{id}}}
		}
		b.StartTimer()
		start := time.Now()
		for _, m := range msgs {
			for {
				if _, err := rawJS.PublishMsgAsync(m, jetstream.WithStallWait(5*time.Second)); err == nil {
					break
				}
			}
		}
		<-rawJS.PublishAsyncComplete()
		raw += time.Since(start)

		b.StopTimer()
		purge()
		if _, err := PublishEvent(ctx, d.js, []byte(event("BENCH", i+1, "investigating")), 0); err != nil {
			b.Fatal(err)
		}
		msg, err := cons.Next()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start = time.Now()
		fo.handle(ctx, msg)
		herald += time.Since(start)
		b.StopTimer()
		info, _ := d.topo.Deliveries.Info(ctx)
		if info.State.Msgs != batches {
			b.Fatalf("fan-out stored %d jobs, want %d batches", info.State.Msgs, batches)
		}
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N * len(targets))
	b.ReportMetric(n/herald.Seconds(), "fanout_targets/s")
	b.ReportMetric(float64(batches), "batches")
	b.ReportMetric(n/raw.Seconds(), "raw_msgs/s")
	b.ReportMetric(raw.Seconds()/herald.Seconds(), "ratio")
}

// rawPostLoop POSTs body to each of urls once from workers goroutines
// sharing one keep-alive client, and returns how long it took: the
// baseline of the webhook benchmarks.
func rawPostLoop(b *testing.B, urls []string, body []byte, workers int) time.Duration {
	// Every connection kept for reuse, whatever the number of hosts.
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 0, MaxIdleConnsPerHost: workers, IdleConnTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				k := next.Add(1) - 1
				if k >= int64(len(urls)) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, urls[k], bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// webhookBench is a dispatcher with webhook subscribers stored and
// running, for the webhook benchmarks.
type webhookBench struct {
	d   *Dispatcher
	ctx context.Context
	// body is the payload a subscriber gets, for the raw loop.
	body []byte
}

// newWebhookBench stores n webhook subscribers, the i-th at url(i), and
// runs a dispatcher with cfg on the server ns (nil: an embedded one of its
// own).
func newWebhookBench(b *testing.B, n int, url func(i int) string, cfg func(*Config), wcfg func(*webhook.Config)) *webhookBench {
	d, _, ctx := benchDispatcher(b, cfg, wcfg)
	for i := range n {
		s := &subscribers.Subscriber{ID: fmt.Sprintf("m%06d", i), Locale: "fr-FR",
			Endpoints: []subscribers.Endpoint{{ID: "wh", Channel: channels.Webhook, URL: url(i), Secret: testSecret}}}
		if _, err := d.store.Put(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(runCtx) }()
	b.Cleanup(func() { stop(); <-done })
	for !d.Ready() || d.index.Len() < n {
		time.Sleep(10 * time.Millisecond)
	}
	payload, _ := d.renderer.Render(templates.Update{Event: mustEvent(event("BENCH", 1, "investigating")), AcceptedAt: time.Now()}, channels.Webhook, templates.Recipient{Locale: "fr"})
	return &webhookBench{d: d, ctx: ctx, body: payload.Body}
}

// deliver publishes update seq and waits until received() has grown by n.
func (w *webhookBench) deliver(b *testing.B, seq, n int, received func() int64) time.Duration {
	before := received()
	stopProfile := profileHerald(b)
	defer stopProfile()
	start := time.Now()
	if _, err := PublishEvent(w.ctx, w.d.js, []byte(event("BENCH", seq, "investigating")), 0); err != nil {
		b.Fatal(err)
	}
	for received()-before < int64(n) {
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// BenchmarkWebhookThroughput delivers 50 000 webhooks through the whole
// pipeline (publish → fan-out in batches → delivery loop → signed POST →
// record → group commit → ack) to a local sink that answers at once, with
// the default configuration (so at most 16 sends in flight to the sink, its
// one host), and, in the same run, sends 50 000 POSTs of the same payload
// to the same sink from a raw net/http loop of 32 workers: the baseline.
// It reports both rates and their ratio. (BenchmarkWebhookLatency measures
// many hosts.)
//
// HERALD_BENCH_DELIVERIES shrinks the run; HERALD_BENCH_PROFILE=FILE writes
// a CPU profile of Herald's pass only.
func BenchmarkWebhookThroughput(b *testing.B) {
	deliveries := benchSize("HERALD_BENCH_DELIVERIES", 50_000)
	recv := newSlowHosts(b, 0)
	url := func(i int) string { return recv.url(0, i) }
	w := newWebhookBench(b, deliveries, url, nil, loopbackWebhooks)
	urls := make([]string, deliveries)
	for i := range urls {
		urls[i] = url(i)
	}
	var herald, raw time.Duration
	b.ResetTimer()
	for i := range b.N {
		raw += rawPostLoop(b, urls, w.body, 32)
		herald += w.deliver(b, i+1, deliveries, recv.n.Load)
	}
	b.StopTimer()
	n := float64(b.N * deliveries)
	b.ReportMetric(n/herald.Seconds(), "herald_deliveries/s")
	b.ReportMetric(n/raw.Seconds(), "raw_posts/s")
	b.ReportMetric(raw.Seconds()/herald.Seconds(), "ratio")
	reportPeakRSS(b)
}

// profileHerald starts a CPU profile of Herald's part of a benchmark into
// the file HERALD_BENCH_PROFILE names (go test -cpuprofile would mix in the
// set-up and the baselines), and returns its stop.
func profileHerald(b *testing.B) (stop func()) {
	name := os.Getenv("HERALD_BENCH_PROFILE")
	if name == "" {
		return func() {}
	}
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// benchSize reads a benchmark's size from the environment (for quick
// profiling runs), else returns def.
func benchSize(env string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(env)); err == nil && n > 0 {
		return n
	}
	return def
}

func mustEvent(s string) *incident.Event {
	ev, err := incident.Decode([]byte(s), 0)
	if err != nil {
		panic(err)
	}
	return ev
}

// BenchmarkPublishToWebhook measures, on an idle system, the time from
// publishing an update to its webhook arriving, over 200 updates, and
// reports the median and the 99th percentile.
func BenchmarkPublishToWebhook(b *testing.B) {
	arrived := make(chan time.Time, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusNoContent)
		arrived <- time.Now()
	}))
	b.Cleanup(srv.Close)
	d, _, ctx := benchDispatcher(b, nil, nil)
	s := &subscribers.Subscriber{ID: "m1", Locale: "fr-FR", Endpoints: []subscribers.Endpoint{{ID: "wh", Channel: channels.Webhook, URL: srv.URL + "/h", Secret: testSecret}}}
	if _, err := d.store.Put(ctx, s); err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(runCtx) }()
	defer func() { stop(); <-done }()
	for !d.Ready() || d.index.Len() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	const updates = 200
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		for u := range updates {
			time.Sleep(5 * time.Millisecond) // idle between updates
			start := time.Now()
			if _, err := PublishEvent(ctx, d.js, []byte(event(fmt.Sprintf("LAT-%d-%d", i, u), 1, "investigating")), 0); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, (<-arrived).Sub(start))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}

// reportPeakRSS reports the process's peak resident set (VmHWM), in MB,
// where the system tells it: an upper bound of Herald's own, as the test
// process also runs the NATS server, the receivers and the baseline.
func reportPeakRSS(b *testing.B) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			b.ReportMetric(float64(kb)/1024, "peak_rss_MB")
		}
	}
}

// slowHosts is a receiver reachable at many loopback addresses (127.10.x.y,
// all on one listener bound to every address), answering each request
// after a delay: merchant endpoints on many hosts.
type slowHosts struct {
	srv  *httptest.Server
	port string
	n    atomic.Int64
}

func newSlowHosts(b *testing.B, delay time.Duration) *slowHosts {
	h := &slowHosts{}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		b.Fatal(err)
	}
	h.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		if delay > 0 {
			time.Sleep(delay)
		}
		h.n.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}}
	h.srv.Start()
	b.Cleanup(h.srv.Close)
	_, h.port, _ = net.SplitHostPort(ln.Addr().String())
	return h
}

// url returns the URL of endpoint i of host number host.
func (h *slowHosts) url(host, i int) string {
	return fmt.Sprintf("http://127.10.%d.%d:%s/h/%d", host/250, host%250+1, h.port, i)
}

// loopbackWebhooks lets webhooks reach every loopback address over plain
// HTTP (the benchmarks' hosts).
func loopbackWebhooks(c *webhook.Config) {
	c.AllowHTTP, c.Allow = true, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

// BenchmarkWebhookLatency delivers one update to 10 000 webhook endpoints
// spread over 1 000 hosts that each answer after 200 ms, with the default
// configuration, and, in the same run, POSTs the same payload to the same
// 10 000 URLs from a raw net/http loop keeping 1 024 requests in flight:
// the baseline. Latency, not a constant of Herald's, should set the pace.
// HERALD_BENCH_ENDPOINTS changes the number of endpoints (10 per host).
func BenchmarkWebhookLatency(b *testing.B) {
	endpoints := benchSize("HERALD_BENCH_ENDPOINTS", 10_000)
	hosts := max(1, endpoints/10)
	recv := newSlowHosts(b, 200*time.Millisecond)
	url := func(i int) string { return recv.url(i%hosts, i) }
	w := newWebhookBench(b, endpoints, url, nil, loopbackWebhooks)
	urls := make([]string, endpoints)
	for i := range urls {
		urls[i] = url(i)
	}
	var herald, raw time.Duration
	b.ResetTimer()
	for i := range b.N {
		raw += rawPostLoop(b, urls, w.body, 1024)
		herald += w.deliver(b, i+1, endpoints, recv.n.Load)
	}
	b.StopTimer()
	n := float64(b.N * endpoints)
	b.ReportMetric(n/herald.Seconds(), "herald_deliveries/s")
	b.ReportMetric(n/raw.Seconds(), "raw_posts/s")
	b.ReportMetric(raw.Seconds()/herald.Seconds(), "ratio")
	reportPeakRSS(b)
}
