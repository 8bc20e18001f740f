package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/subscribers"
)

// TestEndToEndWebhook: a corpus update reaches every matching endpoint once,
// signed so that the Standard Webhooks library verifies it, and no one else.
func TestEndToEndWebhook(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.putSubscriber(b.webhookSubscriber("m_oney", "/oney", "oney"))
	b.putSubscriber(b.webhookSubscriber("m_all", "/all"))
	b.putSubscriber(b.webhookSubscriber("m_3ds", "/3ds", "3ds"))
	narrow := b.webhookSubscriber("m_p1only", "/p1only")
	narrow.Endpoints[0].MinPriority = "P1"
	b.putSubscriber(narrow)

	res := b.publish(corpusEvent(t, "TSR-1723:1")) // components [oney], no priority
	b.waitFor("deliveries", 10*time.Second, func() bool {
		return b.recv.delivered("/oney") == 1 && b.recv.delivered("/all") == 1
	})
	b.waitFor("delivery log", 5*time.Second, func() bool { return b.hasOutcome("m_oney", Delivered) })
	for _, path := range []string{"/oney", "/all"} {
		hits := b.recv.hitsFor(path)
		if len(hits) != 1 {
			t.Fatalf("%s got %d requests, want 1", path, len(hits))
		}
		if hits[0].verified != nil {
			t.Errorf("%s: signature does not verify: %v", path, hits[0].verified)
		}
		var payload struct {
			Type string `json:"type"`
			Data struct {
				EventID    string `json:"event_id"`
				IncidentID string `json:"incident_id"`
				Status     string `json:"status"`
			} `json:"data"`
		}
		if err := json.Unmarshal(hits[0].body, &payload); err != nil {
			t.Fatalf("%s: payload: %v", path, err)
		}
		if payload.Data.EventID != res.ID || payload.Data.IncidentID != "TSR-1723" || payload.Data.Status != "monitoring" {
			t.Errorf("%s: payload %+v", path, payload)
		}
	}
	if got := b.recv.hitsFor("/oney")[0].id; got != DeliveryID("TSR-1723:1", "m_oney", "wh") {
		t.Errorf("webhook-id %q is not the delivery id", got)
	}
	// Not for them: another component, and an unrated update below P1.
	// A later update of the incident that is for them (3ds, P1) arrives
	// after the first had its turn; once every job is done, they hold only
	// that one.
	b.publish(event("TSR-1723", 2, "resolved", "components", `["3ds"]`, "priority", "P1"))
	b.waitFor("the later update", 10*time.Second, func() bool {
		return b.recv.delivered("/3ds") >= 1 && b.recv.delivered("/p1only") >= 1
	})
	b.settled()
	for _, path := range []string{"/3ds", "/p1only"} {
		hits := b.recv.hitsFor(path)
		if len(hits) != 1 || hits[0].id != DeliveryID("TSR-1723:2", "m_"+strings.TrimPrefix(path, "/"), "wh") {
			t.Errorf("%s: %d requests, want only the later update's", path, len(hits))
		}
	}
	recs := b.records("m_oney")
	if len(recs) != 1 || recs[0].Outcome != Delivered || recs[0].Status != 200 || recs[0].Locale != "fr" {
		t.Errorf("delivery log: %+v", recs)
	}
}

// TestRepublishDoesNotDuplicate: the same update published again inside the
// duplicate window (dropped by JetStream) and after it (caught by the
// snapshot) notifies once.
func TestRepublishDoesNotDuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		// A short window; the ack waits must stay below it.
		c.DuplicateWindow = 2 * time.Second
		for _, name := range channels.Names() {
			c.Channels[name] = ChannelConfig{AckWait: time.Second}
		}
	}})
	b.putSubscriber(b.webhookSubscriber("m1", "/m1"))
	ev := event("INC-1", 1, "investigating")
	first := b.publish(ev)
	again := b.publish(ev)
	if !again.Duplicate || again.StreamSeq != first.StreamSeq {
		t.Fatalf("second publish inside the window: %+v", again)
	}
	b.waitFor("delivery", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })
	time.Sleep(2500 * time.Millisecond) // past the duplicate window
	late := b.publish(ev)
	if late.Duplicate {
		t.Fatal("expected the late re-publish to be stored")
	}
	b.waitFor("the late copy to be consumed", 10*time.Second, func() bool {
		return strings.Contains(b.logs.String(), "update already fanned out")
	})
	// The next update of the incident arrives after the copy had its
	// turn: the endpoint holds the first and that one.
	b.publish(event("INC-1", 2, "resolved"))
	b.waitFor("the next update", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 2 })
	b.settled()
	if n := len(b.recv.hitsFor("/m1")); n != 2 {
		t.Fatalf("endpoint got %d requests, want 2", n)
	}
}

// TestRedeliveredJobDoesNotDuplicate: a job seen again after it was sent
// (the fan-out re-published it after a crash, past the duplicate window)
// finds its delivery record and does not send twice.
func TestRedeliveredJobDoesNotDuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.putSubscriber(b.webhookSubscriber("m1", "/m1"))
	b.publish(event("INC-2", 1, "investigating"))
	b.waitFor("delivery", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })
	b.waitFor("record", 5*time.Second, func() bool { return b.hasOutcome("m1", Delivered) })

	// Replay the very same job as a resumed fan-out would.
	id := DeliveryID("INC-2:1", "m1", "wh")
	recs := b.records("m1")
	job := Job{ID: id, Kind: KindUpdate, EventID: "INC-2:1", IncidentID: "INC-2", Sequence: 1, StreamSeq: 1,
		SubscriberID: "m1", EndpointID: "wh", Channel: channels.Webhook, Priority: "P3"}
	data, _ := json.Marshal(job)
	msg := nats.NewMsg(deliverySubject(channels.Webhook))
	msg.Data = data
	msg.Header.Set(hdrMsgID, id+":again")
	msg.Header.Set(hdrRecheck, "1")
	if _, err := b.js.PublishMsg(b.ctx, msg); err != nil {
		t.Fatal(err)
	}
	// The copy is acknowledged once handled (its writes stored).
	b.settled()
	if n := len(b.recv.hitsFor("/m1")); n != 1 {
		t.Fatalf("endpoint got %d requests, want 1", n)
	}
	if len(b.records("m1")) != len(recs) {
		t.Fatalf("the duplicate job wrote a record: %+v", b.records("m1"))
	}
}

// TestRetryWithBackoff: 500 three times then 200 → delivered on the 4th
// attempt, each retry no sooner than the schedule says.
func TestRetryWithBackoff(t *testing.T) {
	t.Parallel()
	schedule := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 900 * time.Millisecond}
	none := 0.0
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		c.Channels[channels.Webhook] = ChannelConfig{Retry: Backoff{Schedule: schedule, Min: time.Millisecond, Jitter: &none}}
	}})
	b.recv.script("/flaky", func(n int, w http.ResponseWriter) {
		if n <= 3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	b.putSubscriber(b.webhookSubscriber("m1", "/flaky"))
	b.publish(event("INC-3", 1, "investigating"))
	b.waitFor("4th attempt", 15*time.Second, func() bool { return b.recv.delivered("/flaky") == 1 })
	hits := b.recv.hitsFor("/flaky")
	if len(hits) != 4 {
		t.Fatalf("got %d attempts, want 4", len(hits))
	}
	for i := 1; i < len(hits); i++ {
		gap := hits[i].at.Sub(hits[i-1].at)
		t.Logf("attempt %d after %v (schedule %v)", i+1, gap, schedule[i-1])
		if gap < schedule[i-1] {
			t.Errorf("attempt %d came %v after the previous one, before the scheduled %v", i+1, gap, schedule[i-1])
		}
		if hits[i].id != hits[0].id {
			t.Errorf("retry changed the webhook-id")
		}
	}
	b.waitFor("record", 5*time.Second, func() bool { return b.hasOutcome("m1", Delivered) })
	var outcomes []string
	for i, r := range b.records("m1") {
		outcomes = append(outcomes, string(r.Outcome))
		// Retries are parked and come back as new messages: the attempt
		// number travels with them.
		if r.Attempt != i+1 {
			t.Errorf("record %d is attempt %d", i+1, r.Attempt)
		}
	}
	if got := strings.Join(outcomes, ","); got != "retry,retry,retry,delivered" {
		t.Errorf("delivery log outcomes %s", got)
	}
}

// TestRetryAfterHonoured: 429 with Retry-After: 2 is not retried sooner.
func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.recv.script("/busy", func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	b.putSubscriber(b.webhookSubscriber("m1", "/busy"))
	b.publish(event("INC-4", 1, "investigating"))
	b.waitFor("second attempt", 15*time.Second, func() bool { return b.recv.delivered("/busy") == 1 })
	hits := b.recv.hitsFor("/busy")
	gap := hits[1].at.Sub(hits[0].at)
	t.Logf("retried after %v", gap)
	if gap < 2*time.Second {
		t.Fatalf("retried after %v, before Retry-After's 2s", gap)
	}
	recs := b.records("m1")
	if recs[0].Outcome != Retrying || recs[0].Status != 429 || recs[0].NextAttemptAt == nil {
		t.Errorf("first record %+v", recs[0])
	}
}

// TestHangingEndpointDoesNotDelayOthers: while one endpoint hangs, every
// healthy endpoint gets the update. The hanging handler is only released
// once all healthy ones were served, so if they had to wait for it the test
// would never finish.
func TestHangingEndpointDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{webhook: func(c *webhook.Config) { c.Timeout = 30 * time.Second }})
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	b.recv.script("/hang", func(n int, w http.ResponseWriter) { <-release })
	b.putSubscriber(b.webhookSubscriber("m_hang", "/hang"))
	const healthy = 40
	for i := range healthy {
		b.putSubscriber(b.webhookSubscriber(subID(i), "/ok/"+subID(i)))
	}
	start := time.Now()
	b.publish(event("INC-5", 1, "investigating"))
	b.waitFor("healthy endpoints", 20*time.Second, func() bool {
		for i := range healthy {
			if b.recv.delivered("/ok/"+subID(i)) != 1 {
				return false
			}
		}
		return true
	})
	t.Logf("%d healthy endpoints served in %v while one endpoint hung", healthy, time.Since(start))
	if len(b.recv.hitsFor("/hang")) != 0 {
		t.Fatal("the hanging endpoint answered before its release")
	}
	once.Do(func() { close(release) })
	b.waitFor("hanging endpoint", 10*time.Second, func() bool { return b.recv.delivered("/hang") == 1 })
}

// TestRetryingJobsDoNotStallTheChannel: jobs waiting for their retry are
// parked out of the delivery consumer. A job waiting after a Nak still
// counts against the consumer's MaxAckPending, so more failing endpoints
// than MaxAckPending would otherwise stop the channel for everyone until
// their retries ran out (days with the default schedule).
func TestRetryingJobsDoNotStallTheChannel(t *testing.T) {
	t.Parallel()
	const maxAckPending, failing = 4, 10
	noJitter := 0.0
	reg := prometheus.NewRegistry()
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		c.Registerer = reg
		c.Channels = map[string]ChannelConfig{channels.Webhook: {
			Concurrency: 2, MaxAckPending: maxAckPending,
			Retry:   Backoff{Schedule: []time.Duration{time.Hour}, Jitter: &noJitter},
			Breaker: BreakerConfig{Threshold: -1}, // one host for every endpoint here
		}}
	}})
	for i := range failing {
		b.recv.script("/fail/"+subID(i), func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
		b.putSubscriber(b.webhookSubscriber(subID(i), "/fail/"+subID(i)))
	}
	b.publish(event("INC-STALL", 1, "investigating"))
	b.waitFor("every failing endpoint tried and waiting for its retry", 20*time.Second, func() bool {
		for i := range failing {
			if b.lastOutcome(subID(i), DeliveryID("INC-STALL:1", subID(i), "wh")) != Retrying {
				return false
			}
		}
		return true
	})
	if info := b.parked(channels.Webhook); uint64(info.NumAckPending)+info.NumPending != failing {
		t.Errorf("parked jobs: %d pending + %d not yet delivered, want %d", info.NumAckPending, info.NumPending, failing)
	}
	// Operators see them: the backlog gauge reads the consumers' state.
	if got := gaugeValue(t, reg, "herald_jobs_waiting", "channel", "webhook", "queue", "parked"); got != failing {
		t.Errorf("herald_jobs_waiting{webhook,parked} = %v, want %d", got, failing)
	}
	if got := gaugeValue(t, reg, "herald_delivery_outcomes_total", "channel", "webhook", "outcome", "retry"); got != failing {
		t.Errorf("herald_delivery_outcomes_total{webhook,retry} = %v, want %d", got, failing)
	}
	b.putSubscriber(b.webhookSubscriber("m_healthy", "/ok"))
	b.publish(event("INC-STALL", 2, "identified"))
	b.waitFor("the healthy endpoint", 20*time.Second, func() bool { return b.recv.delivered("/ok") == 1 })
	for _, r := range b.delivery(subID(0), DeliveryID("INC-STALL:1", subID(0), "wh")) {
		if r.Attempt != 1 || r.NextAttemptAt == nil || r.NextAttemptAt.Sub(r.At).Round(time.Minute) != time.Hour {
			t.Errorf("record %+v, want attempt 1 retried in an hour", r)
		}
	}
}

// TestSlowDestinationDoesNotHoldTheChannel: a destination that answers
// slowly gets its jobs one slot at a time; the jobs whose turn is further
// than MaxDestinationWait are parked until about then instead of filling
// the jobs in hand (MaxAckPending), so another destination's update goes
// out long before the slow one's backlog is through.
func TestSlowDestinationDoesNotHoldTheChannel(t *testing.T) {
	t.Parallel()
	const slowJobs = 16
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		c.Channels = map[string]ChannelConfig{channels.Webhook: {
			Concurrency: 4, PerDestination: 1, MaxAckPending: 6, MaxDestinationWait: 500 * time.Millisecond,
		}}
	}})
	var mu sync.Mutex
	var order []string // "slow" or "ok", in the order they were answered
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		order = append(order, "slow")
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(slow.Close)
	for i := range slowJobs {
		sub := b.webhookSubscriber(fmt.Sprintf("a_slow_%02d", i), "/")
		sub.Endpoints[0].URL = slow.URL + "/hook"
		b.putSubscriber(sub)
	}
	b.putSubscriber(b.webhookSubscriber("z_ok", "/ok"))
	b.publish(event("INC-SLOW", 1, "investigating"))
	b.waitFor("the healthy endpoint", 20*time.Second, func() bool { return b.recv.delivered("/ok") == 1 })
	mu.Lock()
	before := len(order)
	mu.Unlock()
	t.Logf("the healthy endpoint was served after %d of the slow destination's %d", before, slowJobs)
	if before > slowJobs/2 {
		t.Errorf("the healthy endpoint waited for %d of the slow destination's %d sends", before, slowJobs)
	}
	b.waitFor("the slow destination's backlog", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == slowJobs
	})
	deferrals := 0
	for i := range slowJobs {
		id := fmt.Sprintf("a_slow_%02d", i)
		recs := b.delivery(id, DeliveryID("INC-SLOW:1", id, "wh"))
		if got := recs[len(recs)-1]; got.Outcome != Delivered || got.Attempt != 1 {
			t.Errorf("%s: last record %+v, want delivered at attempt 1 (waiting for a busy destination is no attempt)", id, got)
		}
		deferrals += len(recs) - 1
	}
	t.Logf("%d deferrals for %d jobs of the slow destination", deferrals, slowJobs)
}

// gaugeValue gathers reg and returns the value of the metric name with the
// label pairs given (a gauge or a counter); it fails the test when there
// is none.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func subID(i int) string { return "m_" + strings.Repeat("0", 3-len(itoa(i))) + itoa(i) }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var s []byte
	for ; i > 0; i /= 10 {
		s = append([]byte{byte('0' + i%10)}, s...)
	}
	return string(s)
}

// TestBadEventDeadLettered: an invalid event lands in the dead letters with
// its reason, and the next update flows.
func TestBadEventDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.putSubscriber(b.webhookSubscriber("m1", "/m1"))
	for _, raw := range []string{
		`{"id":"BAD:1","incident_id":"BAD","sequence":0,"status":"investigating","title":"t","body":"b"}`,
		`not json at all`,
		event("OTHER", 1, "investigating"), // published on the wrong subject below
	} {
		subject := IncidentSubject("BAD")
		if _, err := b.js.Publish(b.ctx, subject, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	b.publish(event("INC-6", 1, "investigating"))
	b.waitFor("the good update", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })
	dls, err := b.d.dlq.List(b.ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 3 {
		t.Fatalf("got %d dead letters, want 3: %+v", len(dls), dls)
	}
	for i, want := range []string{"sequence: must be >= 1", "invalid JSON", "does not match the subject"} {
		if !strings.Contains(dls[i].Reason, want) || dls[i].Subject != "incidents.BAD" {
			t.Errorf("dead letter %d: %+v, want reason with %q", i, dls[i], want)
		}
	}
}

// TestGoneDisablesEndpoint: 410 disables the endpoint, tells the subscriber
// by email, and later updates skip it.
func TestGoneDisablesEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.recv.script("/gone", func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	sub := b.webhookSubscriber("m1", "/gone")
	sub.Endpoints = append(sub.Endpoints, subscribers.Endpoint{ID: "mail", Channel: channels.Email, Address: "ops@dupont.example"})
	b.putSubscriber(sub)
	b.publish(event("INC-7", 1, "investigating"))
	b.waitFor("endpoint disabled", 10*time.Second, func() bool {
		s, _, err := b.d.store.Get(b.ctx, "m1")
		return err == nil && s.Endpoint("wh").Disabled != nil
	})
	b.waitFor("notice email in the outbox", 10*time.Second, func() bool {
		return countFiles(t, filepath.Join(b.outbox, channels.Email)) == 2 // the update + the notice
	})
	found := false
	_ = filepath.Walk(filepath.Join(b.outbox, channels.Email), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			data, _ := os.ReadFile(p)
			// Undo quoted-printable soft line breaks.
			text := strings.NewReplacer("=\r\n", "", "=\n", "").Replace(string(data))
			if strings.Contains(text, "410") {
				found = true
			}
		}
		return nil
	})
	if !found {
		t.Error("no email in the outbox mentions the 410")
	}
	// The index no longer holds the endpoint: the next update reaches the
	// email endpoint only.
	b.waitFor("the index to drop the endpoint", 10*time.Second, func() bool {
		for _, tg := range b.d.index.Audience(subscribers.Query{Status: "resolved"}) {
			if tg.EndpointID == "wh" {
				return false
			}
		}
		return true
	})
	b.publish(event("INC-7", 2, "resolved"))
	b.waitFor("the second update's email", 10*time.Second, func() bool {
		return countFiles(t, filepath.Join(b.outbox, channels.Email)) == 3
	})
	if n := len(b.recv.hitsFor("/gone")); n != 1 {
		t.Fatalf("disabled endpoint got %d requests, want 1", n)
	}
}

// countFiles counts the finished files under dir (the outbox writes a
// temporary dot-file first and renames it into place).
func countFiles(t *testing.T, dir string) int {
	return len(outboxFiles(t, dir))
}

// TestExhaustedJobDeadLetteredAndReplayed: a job failing MaxDeliver times
// lands in the dead letters; replayed once the endpoint is fixed, it is
// delivered.
func TestExhaustedJobDeadLetteredAndReplayed(t *testing.T) {
	t.Parallel()
	none := 0.0
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		c.Channels[channels.Webhook] = ChannelConfig{MaxDeliver: 3, Retry: Backoff{Schedule: []time.Duration{100 * time.Millisecond}, Min: time.Millisecond, Jitter: &none}}
	}})
	var mu sync.Mutex
	broken := true
	b.recv.script("/down", func(n int, w http.ResponseWriter) {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	b.putSubscriber(b.webhookSubscriber("m1", "/down"))
	b.publish(event("INC-8", 1, "investigating"))
	var dls []DeadLetter
	b.waitFor("dead letter", 10*time.Second, func() bool {
		dls, _ = b.d.dlq.List(b.ctx, 0, 10)
		return len(dls) == 1
	})
	if dls[0].Attempts != 3 || !strings.Contains(dls[0].Reason, "attempts exhausted") || dls[0].Ref != DeliveryID("INC-8:1", "m1", "wh") {
		t.Fatalf("dead letter %+v", dls[0])
	}
	if n := len(b.recv.hitsFor("/down")); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	if err := b.d.dlq.Replay(b.ctx, dls[0].Seq); err != nil {
		t.Fatal(err)
	}
	b.waitFor("replayed delivery", 10*time.Second, func() bool { return b.recv.delivered("/down") == 1 })
	if left, _ := b.d.dlq.List(b.ctx, 0, 10); len(left) != 0 {
		t.Fatalf("dead letter not removed after replay: %+v", left)
	}
	// Replaying a delivered job again sends nothing.
	b.waitFor("record", 5*time.Second, func() bool { return b.hasOutcome("m1", Delivered) })
}

// TestQuietUpdate: notify false records the update and sends nothing.
func TestQuietUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.putSubscriber(b.webhookSubscriber("m1", "/m1"))
	b.publish(event("INC-9", 1, "resolved", "notify", "false"))
	b.waitFor("snapshot", 10*time.Second, func() bool {
		s, _ := b.d.Snapshot(b.ctx, "INC-9")
		return s != nil && s.LatestSeq == 1 && s.Status == "resolved"
	})
	// A later update of the incident arrives after the quiet one had its
	// turn: only that one is sent.
	b.publish(event("INC-9", 2, "postmortem"))
	b.waitFor("the next update", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })
	b.settled()
	if hits := b.recv.hitsFor("/m1"); len(hits) != 1 || hits[0].id != DeliveryID("INC-9:2", "m1", "wh") {
		t.Fatalf("%d notifications, want the later update's only", len(hits))
	}
}

// TestLateUpdateNotSent: an update older than its incident's latest (it
// arrived after a later one) is recorded in the snapshot as late and sent
// to nobody, on any channel; the next update flows.
func TestLateUpdateNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.putSubscriber(&subscribers.Subscriber{ID: "m1", Locale: "en", Endpoints: []subscribers.Endpoint{
		{ID: "sms", Channel: channels.SMS, Address: "+33612345678"},
		{ID: "mail", Channel: channels.Email, Address: "ops@example.com"},
	}})
	b.publish(event("INC-10", 2, "resolved"))
	b.waitFor("the first update", 10*time.Second, func() bool {
		return countFiles(t, filepath.Join(b.outbox, channels.Email)) == 1 && countFiles(t, filepath.Join(b.outbox, channels.SMS)) == 1
	})
	b.publish(event("INC-10", 1, "investigating"))
	b.waitFor("the late update recorded", 10*time.Second, func() bool {
		s, _ := b.d.Snapshot(b.ctx, "INC-10")
		u := s.update(1)
		return u != nil && u.State == stateLate
	})
	// A later update, published after the late one, arrives: the late
	// one had its turn and sent nothing.
	b.publish(event("INC-10", 3, "postmortem"))
	b.waitFor("the next update", 10*time.Second, func() bool {
		return countFiles(t, filepath.Join(b.outbox, channels.Email)) >= 2 && countFiles(t, filepath.Join(b.outbox, channels.SMS)) >= 2
	})
	b.waitFor("its records", 5*time.Second, func() bool { return len(b.records("m1")) >= 4 })
	for _, r := range b.records("m1") {
		if r.Sequence == 1 {
			t.Errorf("the late update has a delivery record: %+v", r)
		}
	}
	if n := countFiles(t, filepath.Join(b.outbox, channels.Email)); n != 2 {
		t.Errorf("%d emails, want 2 (updates 2 and 3)", n)
	}
	if !strings.Contains(b.logs.String(), "update older than the incident's latest") {
		t.Error("the late update was not logged")
	}
	// Another event claiming a sequence already used is a conflict.
	b.publish(event("INC-10", 2, "resolved", "id", "INC-10:2b"))
	b.waitFor("the conflicting copy dead-lettered", 10*time.Second, func() bool {
		dls, _ := b.d.dlq.List(b.ctx, 0, 10)
		return len(dls) == 1 && strings.Contains(dls[0].Reason, "already used by event INC-10:2")
	})
}

// TestSuppressedAddressSkipped: an email to a suppressed address is not
// sent, and recorded.
func TestSuppressedAddressSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	if err := b.d.supp.Add(b.ctx, channels.Email, "Bounced@Example.com", "5.1.1 no such user"); err != nil {
		t.Fatal(err)
	}
	b.putSubscriber(&subscribers.Subscriber{ID: "m1", Locale: "fr", Endpoints: []subscribers.Endpoint{
		{ID: "mail", Channel: channels.Email, Address: "bounced@example.com"},
	}})
	b.publish(event("INC-11", 1, "investigating"))
	b.waitFor("suppressed record", 10*time.Second, func() bool { return b.hasOutcome("m1", Suppressed) })
	if n := countFiles(t, filepath.Join(b.outbox, channels.Email)); n != 0 {
		t.Fatalf("%d emails sent to a suppressed address", n)
	}
	if n, err := b.d.supp.Remove(b.ctx, "bounced@example.com"); err != nil || n != 1 {
		t.Fatalf("Remove = %d, %v", n, err)
	}
}

// TestRedeliveriesUseNoAttempt: a job delivered again and again without an
// answer (the processes handling it died, or Herald's infrastructure
// failed) uses no attempt and is never dead-lettered for it: with one
// attempt allowed, it is still sent, as attempt 1.
func TestRedeliveriesUseNoAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true, cfg: func(c *Config) {
		c.Channels = map[string]ChannelConfig{channels.Webhook: {MaxDeliver: 1, AckWait: time.Second}}
	}})
	// Stored only: the loop resolves endpoints from the bucket.
	if _, err := b.d.store.Put(b.ctx, b.webhookSubscriber("m1", "/m1")); err != nil {
		t.Fatal(err)
	}
	raw := event("INC-MAXD", 1, "investigating")
	res := b.publish(raw)
	ev := mustEvent(raw)
	enc, _ := newJobEncoder(ev, res.StreamSeq, "P3")
	target := subscribers.Target{SubscriberID: "m1", EndpointID: "wh", Channel: channels.Webhook}
	id := DeliveryID(ev.ID, "m1", "wh")
	if _, err := b.js.Publish(b.ctx, deliverySubject(channels.Webhook), enc.encode(nil, id, target), jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
	cons, err := b.d.topo.Deliveries.Consumer(b.ctx, deliveryConsumer(channels.Webhook))
	if err != nil {
		t.Fatal(err)
	}
	// Three deliveries that die without an answer.
	for i := range 3 {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range batch.Messages() {
			n++
		}
		if n != 1 {
			t.Fatalf("delivery %d: got %d messages", i+1, n)
		}
	}
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = b.d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	b.waitFor("the send", 15*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })
	b.waitFor("its record", 5*time.Second, func() bool { return b.hasOutcome("m1", Delivered) })
	if recs := b.records("m1"); len(recs) != 1 || recs[0].Attempt != 1 {
		t.Errorf("records %+v, want one delivered attempt 1", recs)
	}
	if dls, _ := b.d.dlq.List(b.ctx, 0, 10); len(dls) != 0 {
		t.Errorf("dead letters %+v", dls)
	}
}

// TestPanickingSendDeadLettersItsTarget: a target whose handling panics is
// dead-lettered with the panic as its reason; the other targets of its
// batch are delivered and the process goes on.
func TestPanickingSendDeadLettersItsTarget(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{channels: map[string]channels.Channel{channels.SMS: panicky{}}})
	b.putSubscriber(b.webhookSubscriber("m1", "/m1"))
	b.putSubscriber(&subscribers.Subscriber{ID: "m2", Locale: "en", Endpoints: []subscribers.Endpoint{
		{ID: "sms", Channel: channels.SMS, Address: "+33612345678"},
		{ID: "wh", Channel: channels.Webhook, URL: b.recv.url("/m2"), Secret: testSecret},
	}})
	b.publish(event("INC-PANIC", 1, "investigating"))
	b.waitFor("the webhooks", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 && b.recv.delivered("/m2") == 1 })
	b.waitFor("the dead letter", 10*time.Second, func() bool {
		dls, _ := b.d.dlq.List(b.ctx, 0, 10)
		return len(dls) == 1
	})
	dls, _ := b.d.dlq.List(b.ctx, 0, 10)
	if dl := dls[0]; dl.Ref != DeliveryID("INC-PANIC:1", "m2", "sms") || dl.Reason != "internal error: the provider's library panicked" {
		t.Errorf("dead letter %+v", dl)
	}
	b.waitFor("the record", 5*time.Second, func() bool { return b.hasOutcome("m2", DeadLettered) })
}

// panicky is a channel whose sends panic.
type panicky struct{}

func (panicky) Send(context.Context, channels.Endpoint, *channels.Message) (channels.Receipt, error) {
	panic("the provider's library panicked")
}

// TestEarlyCopyParkedAgain: a copy of a job that comes back before the due
// time its last record gives (its ack was lost after it was parked) is
// parked again until then, not sent.
func TestEarlyCopyParkedAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.putSubscriber(b.webhookSubscriber("m1", "/m1"))
	ev := mustEvent(event("INC-EARLY", 1, "investigating"))
	id := DeliveryID(ev.ID, "m1", "wh")
	due := time.Now().Add(time.Hour).UTC()
	if err := b.d.log.append(b.ctx, &Record{DeliveryID: id, Kind: KindUpdate, EventID: ev.ID, IncidentID: ev.IncidentID, SubscriberID: "m1", EndpointID: "wh",
		Channel: channels.Webhook, Attempt: 3, Outcome: Retrying, NextAttemptAt: &due, At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	enc, _ := newJobEncoder(ev, 1, "P3")
	m := nats.NewMsg(deliverySubject(channels.Webhook))
	m.Data = enc.encode(nil, id, subscribers.Target{SubscriberID: "m1", EndpointID: "wh", Channel: channels.Webhook})
	m.Header.Set(hdrRecheck, "1") // a copy seen before
	if _, err := b.js.PublishMsg(b.ctx, m); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the copy parked", 10*time.Second, func() bool {
		info := b.parked(channels.Webhook)
		return info.NumAckPending+int(info.NumPending) == 1
	})
	if n := len(b.recv.hitsFor("/m1")); n != 0 {
		t.Fatalf("the early copy was sent (%d requests)", n)
	}
	raw, err := b.d.topo.Deliveries.GetLastMsgForSubject(b.ctx, parkedSubject(channels.Webhook))
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get(hdrAttempt); got != "3" {
		t.Errorf("parked with %s attempts, want 3", got)
	}
	if at, _ := strconv.ParseInt(raw.Header.Get(hdrDue), 10, 64); time.UnixMilli(at).Sub(due).Abs() > time.Second {
		t.Errorf("parked until %v, want %v", time.UnixMilli(at).UTC(), due)
	}
}
