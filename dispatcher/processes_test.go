package dispatcher

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/slack"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
)

// TestTwoProcessesOneDelivery: two Herald processes each get a copy of one
// delivery at the same moment, a parked copy that came due and a
// redelivered one, and the endpoint gets one send: the copy that takes the
// delivery's lease sends, the other finds it taken, waits, then finds the
// delivery done in the log. (Without the lease both copies read an empty
// log and send.)
func TestTwoProcessesOneDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.recv.script("/slow", func(n int, w http.ResponseWriter) {
		time.Sleep(500 * time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	})
	b.putSubscriber(b.webhookSubscriber("m1", "/slow"))
	raw := event("INC-TWINS", 1, "investigating")
	res := b.publish(raw)
	b.waitFor("the first send", 10*time.Second, func() bool { return b.recv.delivered("/slow") == 1 })
	b.waitFor("its record", 5*time.Second, func() bool { return b.hasOutcome("m1", Delivered) })
	b.peer(bundleOpts{})
	ev := mustEvent(raw)
	id := DeliveryID(ev.ID, "m1", "wh")
	// Pretend the first send failed (its record said retry), then bring
	// two copies back together: a parked one, due now, and a redelivery.
	due := time.Now().UTC()
	if err := b.d.log.append(b.ctx, &Record{DeliveryID: id, Kind: KindUpdate, EventID: ev.ID, IncidentID: ev.IncidentID, SubscriberID: "m1", EndpointID: "wh",
		Channel: channels.Webhook, Attempt: 1, Outcome: Retrying, NextAttemptAt: &due, At: due}); err != nil {
		t.Fatal(err)
	}
	enc, _ := newJobEncoder(ev, res.StreamSeq, "P3")
	data := enc.encode(nil, id, subscribers.Target{SubscriberID: "m1", EndpointID: "wh", Channel: channels.Webhook})
	parked := nats.NewMsg(parkedSubject(channels.Webhook))
	parked.Data = data
	parked.Header.Set(hdrDue, strconv.FormatInt(due.UnixMilli(), 10))
	parked.Header.Set(hdrAttempt, "1")
	again := nats.NewMsg(deliverySubject(channels.Webhook))
	again.Data = data
	again.Header.Set(hdrRecheck, "1")
	for _, m := range []*nats.Msg{parked, again} {
		if _, err := b.js.PublishMsg(b.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	b.waitFor("the retry", 10*time.Second, func() bool { return b.recv.delivered("/slow") >= 2 })
	// The copy turned away comes back a few seconds later and finds the
	// delivery done: the stream empties.
	b.waitFor("both copies done", 20*time.Second, func() bool {
		info, err := b.d.topo.Deliveries.Info(b.ctx)
		return err == nil && info.State.Msgs == 0
	})
	if n := b.recv.delivered("/slow"); n != 2 {
		t.Errorf("%d sends, want 2: the first and one retry", n)
	}
	if recs := b.delivery("m1", id); len(recs) != 3 || recs[2].Outcome != Delivered || recs[2].Attempt != 2 {
		t.Errorf("records %s, want delivered, retry, delivered (attempt 2)", outcomeList(recs))
	}
}

// TestLogUnavailableJobStaysInHand: a job whose record cannot be written is
// not acknowledged: it stays in hand (past its ack wait), Herald reports
// itself degraded and counts the trouble, and when the log takes writes
// again, the record is written and the job acknowledged: one send, one
// record, no dead letter.
func TestLogUnavailableJobStaysInHand(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		c.Channels[channels.Webhook] = ChannelConfig{AckWait: time.Second}
	}})
	b.putSubscriber(b.webhookSubscriber("m1", "/m1"))
	// The log refuses writes: full, and discarding new messages.
	if err := b.d.log.append(b.ctx, &Record{DeliveryID: "dlv_filler", SubscriberID: "m0", EndpointID: "wh", Channel: channels.Webhook, Attempt: 1, Outcome: Delivered, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	info, err := b.d.topo.DeliveryLog.Info(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	full := info.Config
	full.MaxMsgs, full.Discard = 1, jetstream.DiscardNew
	if _, err := b.js.UpdateStream(b.ctx, full); err != nil {
		t.Fatal(err)
	}
	b.publish(event("INC-LOG", 1, "investigating"))
	b.waitFor("the send", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })
	troubles := testutil.ToFloat64(b.d.metrics.infraErrors.WithLabelValues(componentDeliveryLog))
	// Several retries of the record, over more than the ack wait.
	b.waitFor("the record's retries", 20*time.Second, func() bool {
		return testutil.ToFloat64(b.d.metrics.infraErrors.WithLabelValues(componentDeliveryLog)) >= troubles+3
	})
	if tr := b.d.Troubles(); len(tr) == 0 || tr[0].Component != componentDeliveryLog {
		t.Errorf("troubles %+v, want the delivery log", tr)
	}
	cons, err := b.d.topo.Deliveries.Consumer(b.ctx, deliveryConsumer(channels.Webhook))
	if err != nil {
		t.Fatal(err)
	}
	if ci, err := cons.Info(b.ctx); err != nil || ci.NumAckPending != 1 || ci.NumRedelivered != 0 {
		t.Errorf("the job is not in hand: %+v %v", ci, err)
	}
	if n := b.recv.delivered("/m1"); n != 1 {
		t.Fatalf("%d sends while the log was unavailable", n)
	}
	// The log takes writes again.
	full.MaxMsgs, full.Discard = -1, jetstream.DiscardOld
	if _, err := b.js.UpdateStream(b.ctx, full); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the record", 20*time.Second, func() bool { return b.hasOutcome("m1", Delivered) })
	b.waitFor("the job acknowledged", 10*time.Second, func() bool {
		info, err := b.d.topo.Deliveries.Info(b.ctx)
		return err == nil && info.State.Msgs == 0
	})
	b.waitFor("Herald ready again", 10*time.Second, func() bool { return len(b.d.Troubles()) == 0 })
	if recs := b.records("m1"); len(recs) != 1 || recs[0].Attempt != 1 {
		t.Errorf("records %+v, want one delivered attempt 1", recs)
	}
	if n := b.recv.delivered("/m1"); n != 1 {
		t.Errorf("%d sends, want 1", n)
	}
	if dls, _ := b.d.dlq.List(b.ctx, 0, 10); len(dls) != 0 {
		t.Errorf("dead letters %+v", dls)
	}
	if v := testutil.ToFloat64(b.d.metrics.recordsLost.WithLabelValues(channels.Webhook)); v != 0 {
		t.Errorf("%v records counted lost", v)
	}
}

// TestSlackPaceAcrossProcesses: two Herald processes post ten updates to
// one Slack channel; the posts reach Slack a pace apart (Slack's one
// message per second per channel), as the fake Slack server measures,
// although each process alone would send its share at once.
func TestSlackPaceAcrossProcesses(t *testing.T) {
	t.Parallel()
	const pace = time.Second
	api := newSlackAPI(t)
	slackChannel := func(b *testBundle) *lateChannel { return &lateChannel{} }
	opts := func(late *lateChannel) bundleOpts {
		return bundleOpts{channels: map[string]channels.Channel{channels.Slack: late}, cfg: func(c *Config) {
			c.Channels = map[string]ChannelConfig{channels.Slack: {Pace: pace, MaxDestinationWait: time.Minute}}
		}}
	}
	lateA, lateB := slackChannel(nil), slackChannel(nil)
	b := setup(t, opts(lateA))
	build := func(late *lateChannel) {
		ch, err := slack.New(slack.Config{
			BotToken: secret.Value(slackTestToken), APIURL: api.srv.URL + "/api/",
			Threads: slack.NewKVThreads(b.d.topo.SlackThreads), PerChannelInterval: -1, // the loop's pace only
		})
		if err != nil {
			t.Fatal(err)
		}
		late.ch = ch
	}
	build(lateA)
	build(lateB)
	b.peer(opts(lateB))
	b.putSubscriber(&subscribers.Subscriber{ID: "partner", Locale: "en-GB", Endpoints: []subscribers.Endpoint{
		{ID: "slack", Channel: channels.Slack, SlackChannel: "C0ONE0001"},
	}})
	for i := range 10 {
		b.publish(event(fmt.Sprintf("INC-P%d", i), 1, "investigating"))
	}
	posts := func() []time.Time {
		var at []time.Time
		for _, c := range api.snapshot() {
			if c.method == "chat.postMessage" && c.channel == "C0ONE0001" {
				at = append(at, c.at)
			}
		}
		return at
	}
	b.waitFor("ten posts", 60*time.Second, func() bool { return len(posts()) == 10 })
	peerSent := strings.Count(b.logs.String(), `"process":"peer","channel":"slack"`)
	at := posts()
	// The turns are reserved a pace apart; a request may reach the server
	// a few milliseconds after its turn, so the gap measured there can be
	// shorter than the pace by that much.
	const jitter = 50 * time.Millisecond
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < pace-jitter {
			t.Errorf("posts %d and %d reached Slack %v apart, want at least %v", i, i+1, gap, pace)
		}
	}
	t.Logf("10 posts over %v; the peer process logged %d Slack lines", at[len(at)-1].Sub(at[0]), peerSent)
}

// TestLeaseRenewedDuringASlowSend: a copy of a delivery sends under the
// delivery's lease, and its send outlasts the lease's TTL twice over; the
// holder's renewals keep the lease, so another process trying to take it
// in the middle of the send finds it held, and the endpoint gets one send.
// (Without the renewals the lease expires under the slow send and the
// other process takes it.)
func TestLeaseRenewedDuringASlowSend(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		c.LeaseTTL = 2 * time.Second
		for _, ch := range channels.Names() {
			c.Channels[ch] = ChannelConfig{AckWait: 1500 * time.Millisecond}
		}
	}})
	started := make(chan struct{}, 1)
	b.recv.script("/slow", func(n int, w http.ResponseWriter) {
		started <- struct{}{}
		time.Sleep(4500 * time.Millisecond) // over two lease TTLs, within the send timeout (5 s)
		w.WriteHeader(http.StatusNoContent)
	})
	raw := event("INC-LEASE", 1, "investigating")
	res := b.publish(raw)
	b.waitFor("the update fanned out to nobody", 10*time.Second, func() bool {
		snap, err := b.d.Snapshot(b.ctx, "INC-LEASE")
		return err == nil && snap != nil && snap.update(1) != nil && snap.update(1).State == stateDone
	})
	b.putSubscriber(b.webhookSubscriber("m1", "/slow")) // reached only by the copy below
	ev := mustEvent(raw)
	id := DeliveryID(ev.ID, "m1", "wh")
	enc, _ := newJobEncoder(ev, res.StreamSeq, "P3")
	copyOf := nats.NewMsg(deliverySubject(channels.Webhook))
	copyOf.Data = enc.encode(nil, id, subscribers.Target{SubscriberID: "m1", EndpointID: "wh", Channel: channels.Webhook})
	copyOf.Header.Set(hdrRecheck, "1") // a copy: it takes the lease
	if _, err := b.js.PublishMsg(b.ctx, copyOf); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the send did not start")
	}
	// Another process, past the lease's first TTL, wants the delivery.
	time.Sleep(3 * time.Second)
	other := newLeases(b.d.topo.Leases, b.js, 2*time.Second, "another-process")
	if _, took, err := other.acquire(b.ctx, id); err != nil || took {
		t.Errorf("another process took the lease in the middle of the send (took %v, %v): it was not renewed", took, err)
	}
	b.waitFor("the delivery recorded", 20*time.Second, func() bool { return b.hasOutcome("m1", Delivered) })
	if n := len(b.recv.hitsFor("/slow")); n != 1 {
		t.Errorf("%d sends, want 1", n)
	}
	if recs := b.delivery("m1", id); len(recs) != 1 || recs[0].Outcome != Delivered {
		t.Errorf("records %s, want one delivered", outcomeList(recs))
	}
}
