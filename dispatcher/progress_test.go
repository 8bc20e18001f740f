package dispatcher

import (
	"fmt"
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/subscribers"
)

// gate holds the requests of a slow receiver: the first free ones are
// answered at once, the others wait until let through one by one, or all.
type gate struct {
	started atomic.Int64
	free    int64
	pass    chan struct{}
	all     chan struct{}
}

func newGate(free int64) *gate {
	return &gate{free: free, pass: make(chan struct{}, 1024), all: make(chan struct{})}
}

// answer is a receiver script: 200, once the gate lets the request by.
func (g *gate) answer(_ int, w http.ResponseWriter) {
	if g.started.Add(1) > g.free {
		select {
		case <-g.pass:
		case <-g.all:
		}
	}
	w.WriteHeader(http.StatusOK)
}

// let lets n held requests through.
func (g *gate) let(n int) {
	for range n {
		g.pass <- struct{}{}
	}
}

// open lets every request through, now and later.
func (g *gate) open() { close(g.all) }

// quietNow returns quiet hours around the present (UTC): an hour before to
// an hour after.
func quietNow() *subscribers.QuietHours {
	now := time.Now().UTC()
	return &subscribers.QuietHours{Start: now.Add(-time.Hour).Format("15:04"), End: now.Add(time.Hour).Format("15:04")}
}

// progressOf returns the progress of one update, failing the test when
// there is none.
func (b *testBundle) progressOf(incidentID, eventID string) *UpdateProgress {
	b.t.Helper()
	p, err := b.d.Progress(b.ctx, incidentID)
	if err != nil {
		b.t.Fatalf("progress: %v", err)
	}
	u := p.Update(eventID)
	if u == nil {
		b.t.Fatalf("progress lists no update %s: %+v", eventID, p)
	}
	return u
}

// tryProgress returns the progress of one update, or an empty one while
// there is none (not yet fanned out).
func (b *testBundle) tryProgress(incidentID, eventID string) *UpdateProgress {
	if p, err := b.d.Progress(b.ctx, incidentID); err == nil {
		if u := p.Update(eventID); u != nil {
			return u
		}
	}
	return &UpdateProgress{}
}

// waitProgress waits until the update is fanned out and its progress per
// channel is want, and returns it.
func (b *testBundle) waitProgress(what, incidentID, eventID string, want map[string]ChannelProgress) *UpdateProgress {
	b.t.Helper()
	var got *UpdateProgress
	deadline := time.Now().Add(20 * time.Second)
	for {
		got = nil
		if p, err := b.d.Progress(b.ctx, incidentID); err == nil {
			got = p.Update(eventID)
		}
		if got != nil && got.State == stateDone && reflect.DeepEqual(got.Channels, want) {
			return got
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: progress\n got %+v\nwant %+v", what, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProgressAgainstASlowReceiver: while a slow receiver takes one
// webhook at a time, the progress of the update tells, per channel, how
// many targets are delivered, outboxed, failed, parked and still waiting,
// and says the update settled once every target has a final outcome or is
// parked.
func TestProgressAgainstASlowReceiver(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		wh := c.Channels[channels.Webhook]
		wh.PerDestination, wh.MaxDeliver = 1, 1000 // one send at a time to the slow receiver; the failing one retries on
		c.Channels[channels.Webhook] = wh
	}})
	g := newGate(0)
	other := newReceiver(t) // another destination: not held up by the slow one
	other.script("/gone", func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	other.script("/fail", func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	const slow = 6
	for i := range slow {
		path := fmt.Sprintf("/s%d", i)
		b.recv.script(path, g.answer)
		b.putSubscriber(b.webhookSubscriber(fmt.Sprintf("s%d", i), path))
	}
	fail := b.webhookSubscriber("fail", "/fail")
	fail.Endpoints[0].URL = other.url("/fail")
	gone := b.webhookSubscriber("gone", "/gone")
	gone.Endpoints[0].URL = other.url("/gone")
	b.putSubscriber(fail)
	b.putSubscriber(gone)
	b.putSubscriber(&subscribers.Subscriber{ID: "mail", Locale: "fr-FR", Endpoints: []subscribers.Endpoint{{ID: "e", Channel: channels.Email, Address: "ops@dupont.example"}}})
	b.putSubscriber(&subscribers.Subscriber{ID: "quiet", Locale: "fr-FR", Endpoints: []subscribers.Endpoint{{ID: "s", Channel: channels.SMS, Address: "+33612345678", QuietHours: quietNow()}}})

	b.publish(event("PRG-1", 1, "investigating"))
	// One webhook in flight at the slow receiver, five queued.
	u := b.waitProgress("while the first webhook is held", "PRG-1", "PRG-1:1", map[string]ChannelProgress{
		channels.Webhook: {Targets: 8, Failed: 1, Parked: 1, Waiting: 6},
		channels.Email:   {Targets: 1, Outboxed: 1},
		channels.SMS:     {Targets: 1, Parked: 1},
	})
	if u.Settled || u.Total != (ChannelProgress{Targets: 10, Outboxed: 1, Failed: 1, Parked: 2, Waiting: 6}) || u.State != stateDone {
		t.Errorf("progress %+v", u)
	}
	if n := g.started.Load(); n != 1 {
		t.Fatalf("%d requests at the slow receiver, want 1 (one at a time)", n)
	}
	g.let(3)
	b.waitProgress("three webhooks let through", "PRG-1", "PRG-1:1", map[string]ChannelProgress{
		channels.Webhook: {Targets: 8, Delivered: 3, Failed: 1, Parked: 1, Waiting: 3},
		channels.Email:   {Targets: 1, Outboxed: 1},
		channels.SMS:     {Targets: 1, Parked: 1},
	})
	g.open()
	u = b.waitProgress("all let through", "PRG-1", "PRG-1:1", map[string]ChannelProgress{
		channels.Webhook: {Targets: 8, Delivered: 6, Failed: 1, Parked: 1},
		channels.Email:   {Targets: 1, Outboxed: 1},
		channels.SMS:     {Targets: 1, Parked: 1},
	})
	if !u.Settled {
		t.Errorf("every target has a final outcome or is parked, yet not settled: %+v", u)
	}
	// The failing endpoint retries: still parked, counted once.
	b.waitFor("a retry", 20*time.Second, func() bool { return len(other.hitsFor("/fail")) >= 3 })
	if got := b.progressOf("PRG-1", "PRG-1:1").Channels[channels.Webhook]; got != (ChannelProgress{Targets: 8, Delivered: 6, Failed: 1, Parked: 1}) {
		t.Errorf("after the retries: %+v", got)
	}
	// A quiet update, and the progress of an incident nobody knows.
	b.publish(event("PRG-1", 2, "resolved", "notify", "false"))
	b.waitFor("the quiet update", 10*time.Second, func() bool {
		p, err := b.d.Progress(b.ctx, "PRG-1")
		return err == nil && len(p.Updates) == 2 && p.Updates[1].State == stateQuiet && p.Updates[1].Settled && p.Updates[1].Total.Targets == 0
	})
	if _, err := b.d.Progress(b.ctx, "NOPE"); err != ErrNoIncident {
		t.Errorf("progress of an unknown incident: %v", err)
	}
}

// TestProgressTrackerFold: the tracker's counts follow each delivery's
// latest record, a send standing whatever follows it.
func TestProgressTrackerFold(t *testing.T) {
	t.Parallel()
	tr := newProgressTracker("INC")
	add := func(id string, o Outcome, ch string) {
		tr.add(appendRecord(nil, &Record{DeliveryID: id, Kind: KindUpdate, EventID: "INC:1", IncidentID: "INC", Sequence: 1,
			SubscriberID: "m", EndpointID: "e", Channel: ch, Attempt: 1, Outcome: o, Reason: `"channel":"sms","outcome":"failed"`}))
	}
	add("d1", Retrying, channels.Webhook)
	add("d1", Retrying, channels.Webhook)
	add("d1", Delivered, channels.Webhook)
	add("d1", Recalled, channels.Webhook) // too late: the send stands
	add("d2", Deferred, channels.SMS)
	add("d2", Recalled, channels.SMS)
	add("d3", Delivered, channels.SMS)
	add("d3", Receipt, channels.SMS)
	add("d4", Receipt, channels.SMS) // a receipt before its attempt's record: sent
	add("d4", Retrying, channels.SMS)
	add("d5", Retrying, channels.Email)
	add("d5", DeadLettered, channels.Email)
	// A notice and a record of another kind are not counted.
	tr.add(appendRecord(nil, &Record{DeliveryID: "n1", Kind: "address.confirm", EventID: "x", Channel: channels.Email, Outcome: Outboxed}))
	tr.add([]byte(`not json`))
	u := tr.update(UpdateState{Sequence: 1, EventID: "INC:1", State: stateDone, ChannelTargets: map[string]int{channels.Webhook: 2, channels.SMS: 3, channels.Email: 1}})
	want := map[string]ChannelProgress{
		channels.Webhook: {Targets: 2, Delivered: 1, Waiting: 1},
		channels.SMS:     {Targets: 3, Delivered: 2, Recalled: 1},
		channels.Email:   {Targets: 1, DeadLettered: 1},
	}
	if !reflect.DeepEqual(u.Channels, want) || u.Settled || u.Total.Waiting != 1 {
		t.Errorf("progress\n got %+v\nwant %+v", u, want)
	}
	if len(channels.Names()) != numChannels {
		t.Errorf("numChannels is %d, there are %d channels", numChannels, len(channels.Names()))
	}
	// A snapshot of an earlier version knows only the total.
	old := tr.update(UpdateState{Sequence: 1, EventID: "INC:1", State: stateDone, Targets: 9})
	if old.Total.Targets != 9 || old.Total.Waiting != 4 {
		t.Errorf("progress without targets per channel: %+v", old.Total)
	}
}
