package dispatcher

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
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
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		b.Fatal(err)
	}
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

// BenchmarkFanout fans one update out to 100 000 subscribers (150 000 jobs)
// into DELIVERIES, and, in the same run, publishes the same number of
// messages of the same size with Nats-Msg-Id as raw async JetStream
// publishes: the baseline. It reports both rates and their ratio.
func BenchmarkFanout(b *testing.B) {
	const subs = 100_000
	d, nc, ctx := benchDispatcher(b, nil, nil)
	benchAudience(d, subs, func(i int) string { return fmt.Sprintf("https://h%d.example/hook", i%100) })
	fo, err := newFanout(d)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := d.topo.Incidents.Consumer(ctx, ConsumerFanout)
	if err != nil {
		b.Fatal(err)
	}
	rawJS, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(d.cfg.FanoutMaxPending))
	purge := func() {
		if err := d.topo.Deliveries.Purge(ctx); err != nil {
			b.Fatal(err)
		}
	}
	// The baseline's messages: same subjects, sizes and ids as the jobs.
	ev, _ := incident.Decode([]byte(event("BENCH", 1, "investigating")), 0)
	enc, _ := newJobEncoder(ev, 1, "P3")
	targets := d.index.Audience(subscribers.Query{Components: ev.Components, Priority: "P3", Status: ev.Status})
	jobs := len(targets)
	var herald, raw time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		purge()
		msgs := make([]*nats.Msg, jobs)
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
		if info.State.Msgs != uint64(jobs) {
			b.Fatalf("fan-out stored %d jobs, want %d", info.State.Msgs, jobs)
		}
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N * jobs)
	b.ReportMetric(n/herald.Seconds(), "fanout_jobs/s")
	b.ReportMetric(n/raw.Seconds(), "raw_msgs/s")
	b.ReportMetric(raw.Seconds()/herald.Seconds(), "ratio")
}

// fastReceiver answers 204 to everything and counts requests.
type fastReceiver struct {
	srv *httptest.Server
	n   atomic.Int64
}

func newFastReceiver(b *testing.B) *fastReceiver {
	r := &fastReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.n.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(r.srv.Close)
	return r
}

// BenchmarkWebhookThroughput delivers 50 000 webhooks through the whole
// pipeline (publish → fan-out → delivery loop → signed POST → record → ack)
// to a local receiver, and, in the same run, sends 50 000 POSTs of the same
// payload to the same receiver from a raw net/http loop with the same
// concurrency: the baseline. It reports both rates and their ratio.
func BenchmarkWebhookThroughput(b *testing.B) {
	deliveries := benchSize("HERALD_BENCH_DELIVERIES", 50_000)
	const concurrency = 64
	recv := newFastReceiver(b)
	d, _, ctx := benchDispatcher(b, func(c *Config) {
		c.Channels = map[string]ChannelConfig{channels.Webhook: {Concurrency: concurrency, PerDestination: concurrency, MaxAckPending: 16 * concurrency}}
	}, nil)
	for i := range deliveries {
		d.index.Upsert(&subscribers.Subscriber{ID: fmt.Sprintf("m%06d", i), Locale: "fr-FR",
			Endpoints: []subscribers.Endpoint{{ID: "wh", Channel: channels.Webhook, URL: recv.srv.URL + "/h", Secret: testSecret}}}, 1)
	}
	// The delivery loop resolves subscribers from KV: store them.
	for i := range deliveries {
		s := &subscribers.Subscriber{ID: fmt.Sprintf("m%06d", i), Locale: "fr-FR",
			Endpoints: []subscribers.Endpoint{{ID: "wh", Channel: channels.Webhook, URL: recv.srv.URL + "/h", Secret: testSecret}}}
		if _, err := d.store.Put(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(runCtx) }()
	defer func() { stop(); <-done }()
	for !d.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	for d.index.Len() < deliveries {
		time.Sleep(10 * time.Millisecond)
	}
	payload, _ := d.renderer.Render(templates.Update{Event: mustEvent(event("BENCH", 1, "investigating")), AcceptedAt: time.Now()}, channels.Webhook, templates.Recipient{Locale: "fr"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: 0}}
	var herald, raw time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(deliveries) {
					req, _ := http.NewRequest(http.MethodPost, recv.srv.URL+"/raw", strings.NewReader(string(payload.Body)))
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		raw += time.Since(start)

		before := recv.n.Load()
		start = time.Now()
		if _, err := PublishEvent(ctx, d.js, []byte(event("BENCH", i+1, "investigating")), 0); err != nil {
			b.Fatal(err)
		}
		for recv.n.Load()-before < int64(deliveries) {
			time.Sleep(time.Millisecond)
		}
		herald += time.Since(start)
	}
	b.StopTimer()
	n := float64(b.N * deliveries)
	b.ReportMetric(n/herald.Seconds(), "herald_deliveries/s")
	b.ReportMetric(n/raw.Seconds(), "raw_posts/s")
	b.ReportMetric(raw.Seconds()/herald.Seconds(), "ratio")
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
