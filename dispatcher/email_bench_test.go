package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	gomail "github.com/wneessen/go-mail"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/channels/email"
	"github.com/heraldhq/herald/channels/outbox"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/internal/mailpittest"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// emailBenchWorkers is the SMTP concurrency of both sides of the email
// benchmark: the email channel's pool and the delivery loop's concurrency
// for Herald, the goroutines (one connection each) of the raw loop.
const emailBenchWorkers = 4

// countingChannel hands sends to the real channel and says when the
// expected number of them succeeded; it only counts.
type countingChannel struct {
	channels.Channel

	mu   sync.Mutex
	ok   int
	want int
	done chan struct{}
}

// expect resets the count and returns a channel closed after n successful
// sends.
func (c *countingChannel) expect(n int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ok, c.want, c.done = 0, n, make(chan struct{})
	return c.done
}

func (c *countingChannel) Send(ctx context.Context, ep channels.Endpoint, m *channels.Message) (channels.Receipt, error) {
	r, err := c.Channel.Send(ctx, ep, m)
	if err == nil {
		c.mu.Lock()
		if c.ok++; c.ok == c.want {
			close(c.done)
		}
		c.mu.Unlock()
	}
	return r, err
}

// rawEmail is one message of the raw loop: what Herald renders for the same
// recipient.
type rawEmail struct {
	to, name, deliveryID string
	r                    *templates.Rendered
}

// gomailMsg builds with go-mail alone the message the email channel sends.
func (e rawEmail) gomailMsg() (*gomail.Msg, error) {
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := m.FromFormat("Herald Status", "status@herald.example"); err != nil {
		return nil, err
	}
	if err := m.AddToFormat(e.name, e.to); err != nil {
		return nil, err
	}
	if err := m.ReplyTo("support@herald.example"); err != nil {
		return nil, err
	}
	m.Subject(e.r.Subject)
	m.SetDate()
	m.SetMessageIDWithValue(email.MessageID(e.deliveryID, "herald.example"))
	for k, v := range e.r.Headers {
		m.SetGenHeader(gomail.Header(k), v)
	}
	m.SetBodyString(gomail.TypeTextPlain, e.r.Text)
	m.AddAlternativeString(gomail.TypeTextHTML, e.r.HTML)
	return m, nil
}

// benchUpdate returns the corpus update TSR-1723:1 (French, English and
// Italian text) as update seq of the benchmark's incident.
func benchUpdate(b *testing.B, seq int) string {
	var ev map[string]any
	if err := json.Unmarshal([]byte(corpusEvent(b, "TSR-1723:1")), &ev); err != nil {
		b.Fatal(err)
	}
	ev["id"], ev["incident_id"], ev["sequence"] = fmt.Sprintf("BENCH-MAIL:%d", seq), "BENCH-MAIL", seq
	out, _ := json.Marshal(ev)
	return string(out)
}

// BenchmarkEmailPipeline sends 5 000 emails (HERALD_BENCH_EMAILS for
// another size) to Mailpit through the whole pipeline — publish, fan-out,
// delivery loop, rendering, the email channel's pool of 4 connections,
// delivery record, ack — and the same 5 000 messages (rendered for the same
// recipients) from a raw go-mail loop: 4 goroutines, each with one
// connection dialled once and reused. Each iteration runs both, in
// alternating order, against an emptied Mailpit. It reports both rates and
// their ratio (Herald's target: at least 0.8). Run it with -benchtime=Nx:
// one iteration takes seconds.
func BenchmarkEmailPipeline(b *testing.B) {
	n := benchSize("HERALD_BENCH_EMAILS", 5000)
	mp := mailpittest.Start(b, mailpittest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	ns := startNATS(b)
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	catalog, _ := incident.NewCatalog(incident.DefaultComponents())
	renderer, err := templates.New(templates.Config{Components: catalog, PublicURL: testPublicURL, UnsubscribeMailto: "unsubscribe@herald.example"})
	if err != nil {
		b.Fatal(err)
	}
	counter := &countingChannel{Channel: newEmailChannel(b, mp.Host, mp.SMTPPort, emailBenchWorkers)}
	chans := map[string]channels.Channel{channels.Email: counter}
	for _, name := range []string{channels.SMS, channels.Slack, channels.Webhook} {
		if chans[name], err = outbox.New(outbox.Config{Dir: b.TempDir(), Channel: name}); err != nil {
			b.Fatal(err)
		}
	}
	// Warnings (retries, redeliveries) are kept and summed up: a run
	// that had them says so.
	warnings := &channelstest.SyncBuffer{}
	b.Cleanup(func() {
		if s := warnings.String(); s != "" {
			lines := strings.SplitN(s, "\n", 4)
			b.Logf("%d warnings during the run; first ones:\n%s", strings.Count(s, "\n"), strings.Join(lines[:min(3, len(lines))], "\n"))
		}
	})
	cfg := Config{
		SecretKey: secret.Value(strings.Repeat("k", 32)), PublicURL: testPublicURL,
		Logger:   slog.New(slog.NewTextHandler(warnings, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Channels: map[string]ChannelConfig{channels.Email: {Concurrency: emailBenchWorkers, PerDestination: emailBenchWorkers}},
	}
	d, err := New(ctx, cfg, Deps{Conn: nc, Channels: chans, Renderer: renderer, Catalog: catalog, Rules: subscribers.Rules{Components: catalog}})
	if err != nil {
		b.Fatal(err)
	}
	subs := make([]*subscribers.Subscriber, n)
	for i := range subs {
		locale, tz, name := "fr-FR", "Europe/Paris", fmt.Sprintf("Boulangerie %05d", i)
		if i%2 == 1 {
			locale, tz, name = "it-IT", "Europe/Rome", fmt.Sprintf("Trattoria %05d", i)
		}
		subs[i] = emailSubscriber(fmt.Sprintf("m%05d", i), locale, tz, name, fmt.Sprintf("merchant%05d@dupont.example", i))
		if _, err := d.store.Put(ctx, subs[i]); err != nil {
			b.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = d.Run(runCtx) }()
	b.Cleanup(func() { stop(); <-stopped })
	for !d.Ready() || d.index.Len() < n {
		time.Sleep(10 * time.Millisecond)
	}

	// The raw loop's messages: what Herald renders for each recipient.
	raws := make([]rawEmail, n)
	ev, err := incident.Decode([]byte(benchUpdate(b, 1)), 0)
	if err != nil {
		b.Fatal(err)
	}
	for i, s := range subs {
		r, err := renderer.Render(templates.Update{Event: ev, AcceptedAt: time.Now()}, channels.Email, templates.Recipient{
			Locale: s.Locale, Location: d.location(s.Timezone), Name: s.Name, UnsubscribeURL: d.links.UnsubscribeURL(s.ID, "mail", s.Endpoints[0].Address)})
		if err != nil {
			b.Fatal(err)
		}
		raws[i] = rawEmail{to: s.Endpoints[0].Address, name: s.Name, deliveryID: DeliveryID(ev.ID, s.ID, "mail"), r: r}
	}

	runRaw := func() time.Duration {
		jobs := make(chan rawEmail, n)
		for _, e := range raws {
			jobs <- e
		}
		close(jobs)
		errs := make(chan error, emailBenchWorkers)
		var wg sync.WaitGroup
		start := time.Now()
		for range emailBenchWorkers {
			wg.Go(func() {
				c, err := gomail.NewClient(mp.Host, gomail.WithPort(mp.SMTPPort), gomail.WithTLSPolicy(gomail.NoTLS))
				if err == nil {
					err = c.DialWithContext(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
				defer func() { _ = c.Close() }()
				for e := range jobs {
					m, err := e.gomailMsg()
					if err == nil {
						err = c.Send(m)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		return took
	}
	seq := 0
	runHerald := func() time.Duration {
		seq++
		done := counter.expect(n)
		start := time.Now()
		if _, err := PublishEvent(ctx, d.js, []byte(benchUpdate(b, seq)), 0); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Minute): // a liveness bound
			b.Fatalf("the pipeline did not send %d emails within 10 minutes", n)
		}
		took := time.Since(start)
		// Let the last records and acks land before the next run.
		for {
			info, err := d.topo.Deliveries.Info(ctx)
			if err == nil && info.State.Msgs == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		return took
	}

	var heraldTime, rawTime time.Duration
	runs := 0
	for b.Loop() {
		for i := range 2 {
			if (runs+i)%2 == 0 {
				rawTime += runRaw()
			} else {
				heraldTime += runHerald()
			}
			b.StopTimer()
			if got := mp.WaitTotal(b, n, time.Minute); got != n {
				b.Fatalf("Mailpit holds %d messages after a run, want %d", got, n)
			}
			mp.DeleteAll(b)
			b.StartTimer()
		}
		runs++
	}
	heraldRate := float64(runs*n) / heraldTime.Seconds()
	rawRate := float64(runs*n) / rawTime.Seconds()
	b.ReportMetric(heraldRate, "herald_emails/s")
	b.ReportMetric(rawRate, "raw_emails/s")
	b.ReportMetric(heraldRate/rawRate, "ratio")
	b.Logf("%d runs of %d emails over %d SMTP connections: Herald pipeline %.0f emails/s, raw go-mail %.0f emails/s, ratio %.3f",
		runs, n, emailBenchWorkers, heraldRate, rawRate, heraldRate/rawRate)
}
