package dispatcher

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/subscribers"
)

// recallConfig is the configuration of both processes of the recall
// tests: small batches, so that both take part, and one webhook at a time
// per process to the slow receiver.
func recallConfig(c *Config) {
	c.BatchSize = 2
	wh := c.Channels[channels.Webhook]
	// Few batches in hand over both processes: a process held by the
	// slow receiver leaves the next batches to the other.
	wh.PerDestination, wh.MaxDeliver, wh.MaxAckPending = 1, 1000, 4
	c.Channels[channels.Webhook] = wh
}

// TestRecallWhileHalfIsSent: two Herald processes on one JetStream send an
// update to 20 webhooks through a slow receiver; once half is sent, the
// update is recalled. Nothing else of it is sent, by either process: the
// notifications not sent are recorded recalled at once (queued ones, a
// parked retry, a quiet-hours deferral), the parked one finds its delivery
// over when it comes back, and the answer lists the notifications already
// sent. Only the sends under way when the recall came (one per process at
// most) complete.
func TestRecallWhileHalfIsSent(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{cfg: recallConfig})
	peer := setup(t, bundleOpts{cfg: recallConfig, server: b.ns})
	const n, half = 20, 10
	g := newGate(half)
	other := newReceiver(t)
	other.script("/fail", func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	subs := []*subscribers.Subscriber{}
	for i := range n {
		path := fmt.Sprintf("/r%02d", i)
		b.recv.script(path, g.answer)
		subs = append(subs, b.webhookSubscriber(fmt.Sprintf("r%02d", i), path))
	}
	fail := b.webhookSubscriber("fail", "/fail")
	fail.Endpoints[0].URL = other.url("/fail")
	quiet := &subscribers.Subscriber{ID: "quiet", Locale: "it-IT", Endpoints: []subscribers.Endpoint{{ID: "s", Channel: channels.SMS, Address: "+393471234567", QuietHours: quietNow()}}}
	subs = append(subs, fail, quiet)
	for _, s := range subs {
		b.putSubscriber(s)
		peer.waitFor("the peer to see "+s.ID, 5*time.Second, func() bool { _, ok := peer.d.index.Revision(s.ID); return ok })
	}

	const inc, ev = "RCL-1", "RCL-1:1"
	b.publish(event(inc, 1, "investigating"))
	b.waitFor("half sent", 20*time.Second, func() bool {
		u := b.tryProgress(inc, ev)
		return u.Total.Delivered == half && u.Channels[channels.Webhook].Parked == 1 && u.Channels[channels.SMS].Parked == 1
	})
	failHits := len(other.hitsFor("/fail"))

	res, err := b.d.Recall(b.ctx, inc, ev)
	if err != nil {
		t.Fatal(err)
	}
	inFlight := int(g.started.Load()) - half // held at the receiver: under way when the recall came
	if inFlight < 1 || inFlight > 2 {
		t.Fatalf("%d sends under way at the recall, want 1 or 2 (one per process)", inFlight)
	}
	if res.SentTotal != half || len(res.Sent) != half || res.AlreadyRecalled || res.IncidentID != inc || res.Sequence != 1 {
		t.Fatalf("recall answer %+v, want the %d sent listed", res, half)
	}
	// Everything not sent is recorded recalled at once (by the recall, or
	// by the delivery loop that met the marker first): the queued webhooks
	// (those under way included: the recall cannot tell them from the
	// queued), the parked retry, the deferred SMS.
	listed := map[string]bool{}
	for _, s := range res.Sent {
		listed[s.SubscriberID] = true
	}
	if res.Recalled == 0 {
		t.Error("the recall recorded nothing itself")
	}
	for i := range n {
		sub := fmt.Sprintf("r%02d", i)
		want := Recalled
		if listed[sub] {
			want = Delivered
		}
		if o := b.lastOutcome(sub, DeliveryID(ev, sub, "wh")); o != want {
			t.Errorf("%s: last outcome %q right after the recall, want %q", sub, o, want)
		}
	}
	sent := map[string]bool{}
	for _, s := range res.Sent {
		sent[s.DeliveryID] = true
		if s.Outcome != Delivered || s.Channel != channels.Webhook || !strings.HasPrefix(s.SubscriberID, "r") {
			t.Errorf("sent %+v", s)
		}
	}
	// The other process stops too, once its watch brought the marker;
	// then the sends under way are let through.
	job := &Job{Kind: KindUpdate, EventID: ev, IncidentID: inc, Sequence: 1}
	peer.waitFor("the peer to see the recall", 5*time.Second, func() bool { return peer.d.recalls.recalled(job) })
	g.open()
	b.waitFor("every notification over", 20*time.Second, func() bool {
		u := b.progressOf(inc, ev)
		return u.Settled && u.Total.Parked == 0 && u.Total.Delivered+u.Total.Recalled == n+2
	})
	// The parked retry comes back, finds its delivery over and is
	// dropped: the parked queue empties without another request.
	b.waitFor("the parked retry dropped", 20*time.Second, func() bool {
		info := b.parked(channels.Webhook)
		return info.NumPending == 0 && info.NumAckPending == 0
	})
	// Its retry may have been under way when the recall came (one per
	// process at most); none after. (Without the recall it retries every
	// second.)
	if got := len(other.hitsFor("/fail")); got > failHits+2 {
		t.Errorf("the failing endpoint got %d requests after the recall", got-failHits)
	}
	// What was sent is what the receiver got: the half sent before, and
	// the sends under way. No notification recorded recalled reached it.
	rows := map[string]LedgerRow{}
	if _, err := b.d.Ledger().Export(b.ctx, LedgerFilter{EventID: ev}, func(r *LedgerRow) error { rows[r.DeliveryID] = *r; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(rows) != n+2 {
		t.Fatalf("%d ledger rows, want %d", len(rows), n+2)
	}
	delivered := 0
	for i := range n {
		sub := fmt.Sprintf("r%02d", i)
		row := rows[DeliveryID(ev, sub, "wh")]
		hits := b.recv.delivered("/" + sub)
		switch row.Outcome {
		case Delivered:
			delivered++
			if hits != 1 {
				t.Errorf("%s delivered, but the receiver got %d requests", sub, hits)
			}
		case Recalled:
			if hits != 0 || sent[row.DeliveryID] {
				t.Errorf("%s recalled, but the receiver got %d requests (listed sent: %v)", sub, hits, sent[row.DeliveryID])
			}
		default:
			t.Errorf("%s: outcome %q", sub, row.Outcome)
		}
	}
	if delivered != half+inFlight || int(g.started.Load()) != half+inFlight {
		t.Errorf("%d delivered and %d requests, want the %d sent before the recall and the %d under way", delivered, g.started.Load(), half, inFlight)
	}
	for _, s := range []string{"fail", "quiet"} {
		if r := rows[DeliveryID(ev, s, map[string]string{"fail": "wh", "quiet": "s"}[s])]; r.Outcome != Recalled || !r.Final {
			t.Errorf("%s: ledger row %+v", s, r)
		}
	}
	// Recalling again changes nothing; a later update still goes out.
	again, err := peer.d.Recall(peer.ctx, inc, ev)
	if err != nil || !again.AlreadyRecalled || again.Recalled != 0 || !again.RecalledAt.Equal(res.RecalledAt) || again.SentTotal != half+inFlight {
		t.Errorf("second recall: %+v, %v", again, err)
	}
	for _, d := range []*Dispatcher{b.d, peer.d} {
		if testutil.ToFloat64(d.metrics.outcomes.WithLabelValues(channels.Webhook, string(Delivered))) == 0 {
			t.Error("a process sent nothing: the test did not run on two processes")
		}
	}
	b.publish(event(inc, 2, "resolved"))
	b.waitFor("the correction", 20*time.Second, func() bool {
		u := b.tryProgress(inc, "RCL-1:2")
		return u.Settled && u.Channels[channels.Webhook].Delivered == n
	})
	if u := b.progressOf(inc, "RCL-1:2"); u.Total.Recalled != 0 || u.RecalledAt != nil {
		t.Errorf("the next update is affected by the recall: %+v", u)
	}
	if u := b.progressOf(inc, ev); u.RecalledAt == nil || !u.RecalledAt.Equal(res.RecalledAt) {
		t.Errorf("progress of the recalled update: %+v", u)
	}
	if _, err := b.d.Recall(b.ctx, inc, "RCL-1:9"); err != ErrNoUpdate {
		t.Errorf("recall of no update: %v", err)
	}
	if _, err := b.d.Recall(b.ctx, "NOPE", "NOPE:1"); err != ErrNoUpdate {
		t.Errorf("recall of no incident: %v", err)
	}
}

// TestRecallMaintenanceReminders: recalling a maintenance announcement
// cancels its reminders too: each is recorded recalled when it comes due,
// and none is sent.
func TestRecallMaintenanceReminders(t *testing.T) {
	t.Parallel()
	b, _, _, _ := announcedMaintenance(t, "MNT-R", emailSubscriber("m_mail", "it-IT", "Europe/Rome", "Trattoria", "ops@trattoria.example"), 12*time.Second)
	b.waitFor("the announcement by email", 10*time.Second, func() bool {
		return b.lastOutcome("m_mail", DeliveryID("MNT-R:1", "m_mail", "mail")) == Outboxed
	})
	res, err := b.d.Recall(b.ctx, "MNT-R", "MNT-R:1")
	if err != nil || res.SentTotal != 2 {
		t.Fatalf("recall: %+v, %v", res, err)
	}
	for _, sub := range [][2]string{{"m_hook", "wh"}, {"m_mail", "mail"}} {
		for _, lead := range testLeads {
			id := reminderID("MNT-R:1", lead, sub[0], sub[1])
			b.waitFor("the reminder recalled", 30*time.Second, func() bool { return b.lastOutcome(sub[0], id) == Recalled })
			if recs := b.delivery(sub[0], id); len(recs) != 1 || recs[0].Kind != KindReminder {
				t.Errorf("reminder %s of %s: records %+v", lead, sub[0], recs)
			}
		}
	}
	b.waitParkedEmpty(channels.Webhook)
	b.waitParkedEmpty(channels.Email)
	if n := b.recv.delivered("/hook"); n != 1 {
		t.Errorf("the webhook got %d requests, want the announcement alone", n)
	}
}
