package dispatcher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
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
// concurrency: the baseline. It reports both rates and their ratio. A
// third pass, minimalPipeline, runs the JetStream operations the design
// requires per delivery with nothing else: its ratio to the raw loop
// (floor_ratio) is the most any implementation of the design reaches on
// the machine, and herald/floor is how close Herald comes to it.
//
// HERALD_BENCH_DELIVERIES shrinks the run; HERALD_BENCH_PROFILE=FILE writes
// a CPU profile of Herald's pass only.
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
	// The design's floor: the same JetStream operations per delivery
	// without Herald (see minimalPipeline), on the same server.
	sample := subscribers.Target{SubscriberID: "m000000", EndpointID: "wh", Channel: channels.Webhook}
	ev := mustEvent(event("BENCH", 1, "investigating"))
	enc, _ := newJobEncoder(ev, 1, "P3")
	job := enc.encode(nil, DeliveryID(ev.ID, sample.SubscriberID, sample.EndpointID), sample)
	record := appendRecord(nil, &Record{DeliveryID: DeliveryID(ev.ID, sample.SubscriberID, sample.EndpointID), Kind: KindUpdate, EventID: ev.ID,
		IncidentID: ev.IncidentID, Sequence: ev.Sequence, SubscriberID: sample.SubscriberID, EndpointID: sample.EndpointID, Channel: channels.Webhook,
		Attempt: 1, Outcome: Delivered, Status: 204, Locale: "fr", Requested: "fr-FR", DurationMS: 1.234, At: time.Now()})
	pipe := newMinimalPipeline(b, d.nc, recv.srv.URL+"/floor", concurrency)
	var herald, raw, floor time.Duration
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

		floor += pipe.run(b, i, deliveries, payload.Body, job, record)

		before := recv.n.Load()
		stopProfile := profileHerald(b)
		start = time.Now()
		if _, err := PublishEvent(ctx, d.js, []byte(event("BENCH", i+1, "investigating")), 0); err != nil {
			b.Fatal(err)
		}
		for recv.n.Load()-before < int64(deliveries) {
			time.Sleep(time.Millisecond)
		}
		herald += time.Since(start)
		stopProfile()
	}
	b.StopTimer()
	n := float64(b.N * deliveries)
	b.ReportMetric(n/herald.Seconds(), "herald_deliveries/s")
	b.ReportMetric(n/raw.Seconds(), "raw_posts/s")
	b.ReportMetric(raw.Seconds()/herald.Seconds(), "ratio")
	b.ReportMetric(n/floor.Seconds(), "floor_deliveries/s")
	b.ReportMetric(raw.Seconds()/floor.Seconds(), "floor_ratio")
	b.ReportMetric(floor.Seconds()/herald.Seconds(), "herald/floor")
}

// minimalPipeline is the least any implementation of Herald's design does
// per webhook delivery, written straight against nats.go and net/http: a
// job published asynchronously with Nats-Msg-Id into a file-backed work
// queue, pulled by a durable consumer, the payload POSTed, one record
// published to a file-backed log and its acknowledgement awaited, the job
// acknowledged. No decoding, rendering, signing, limits or metrics. Its
// rate against the raw POST loop is the ceiling of the design on the
// machine at hand.
type minimalPipeline struct {
	js          jetstream.JetStream
	cons        jetstream.Consumer
	client      *http.Client
	url         string
	concurrency int
}

func newMinimalPipeline(b *testing.B, nc *nats.Conn, url string, concurrency int) *minimalPipeline {
	ctx := context.Background()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	jobs, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FLOOR_JOBS", Subjects: []string{"floor.jobs.*"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FLOOR_LOG", Subjects: []string{"floor.log.*.*"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	cons, err := jobs.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "floor", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 16 * concurrency})
	if err != nil {
		b.Fatal(err)
	}
	return &minimalPipeline{js: js, cons: cons, url: url, concurrency: concurrency,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}}
}

// run delivers n jobs and returns how long it took, from the first
// publish to the last acknowledgement.
func (p *minimalPipeline) run(b *testing.B, round, n int, payload, job, record []byte) time.Duration {
	it, err := p.cons.Messages(jetstream.PullMaxMessages(2*p.concurrency), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	msgs := make(chan jetstream.Msg)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	var done sync.WaitGroup
	done.Add(n)
	for range p.concurrency {
		go func() {
			for m := range msgs {
				req, _ := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(payload))
				req.Header.Set("Content-Type", "application/json")
				resp, err := p.client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				fut, err := p.js.PublishAsync("floor.log.m."+m.Headers().Get(hdrMsgID), record)
				if err != nil {
					b.Error(err)
					return
				}
				select {
				case <-fut.Ok():
				case err := <-fut.Err():
					b.Error(err)
					return
				}
				_ = m.Ack()
				done.Done()
			}
		}()
	}
	start := time.Now()
	for k := range n {
		m := &nats.Msg{Subject: "floor.jobs.webhook", Data: job, Header: nats.Header{hdrMsgID: []string{fmt.Sprintf("r%d-%d", round, k)}}}
		for {
			if _, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(5*time.Second)); err == nil {
				break
			}
		}
	}
	done.Wait()
	return time.Since(start)
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
