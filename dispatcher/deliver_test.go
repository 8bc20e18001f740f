package dispatcher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/subscribers"
)

// TestDeliveryGoroutines: a job arriving while a delivery goroutine is idle
// reuses it; idle goroutines exit after the idle delay; a burst after that
// gets goroutines again; a stop ends them all.
func TestDeliveryGoroutines(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	const subs = 12
	for i := range subs {
		if _, err := b.d.store.Put(b.ctx, b.webhookSubscriber(fmt.Sprintf("m%02d", i), "/w")); err != nil {
			t.Fatal(err)
		}
	}
	res := b.publish(event("WRK", 1, "investigating"))
	enc, err := newJobEncoder(mustEvent(event("WRK", 1, "investigating")), res.StreamSeq, "P3")
	if err != nil {
		t.Fatal(err)
	}
	sendJob := func(i int) {
		t.Helper()
		tg := subscribers.Target{SubscriberID: fmt.Sprintf("m%02d", i), EndpointID: "wh", Channel: channels.Webhook}
		id := DeliveryID(res.ID, tg.SubscriberID, tg.EndpointID)
		m := &nats.Msg{Subject: deliverySubject(channels.Webhook), Data: enc.encode(nil, id, tg), Header: nats.Header{hdrMsgID: []string{id}}}
		if _, err := b.js.PublishMsg(b.ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	dl := newDeliverer(b.d, channels.Webhook, b.d.channels[channels.Webhook])
	dl.idleExit = 2 * time.Second
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- dl.run(ctx) }()

	// One job at a time: one goroutine, reused.
	for i := range 4 {
		sendJob(i)
		b.waitFor("delivery", 10*time.Second, func() bool { return b.recv.delivered("/w") == i+1 })
		b.waitFor("the job's end", 5*time.Second, func() bool { return b.hasOutcome(fmt.Sprintf("m%02d", i), Delivered) })
		time.Sleep(100 * time.Millisecond) // the job is over; its goroutine waits for the next
		if n := dl.workers.Load(); n != 1 {
			t.Fatalf("after sequential job %d: %d delivery goroutines, want the same 1", i, n)
		}
	}
	// Idle: it exits.
	b.waitFor("idle goroutines to exit", 10*time.Second, func() bool { return dl.workers.Load() == 0 })
	// A burst starts goroutines again.
	for i := 4; i < subs; i++ {
		sendJob(i)
	}
	b.waitFor("the burst", 10*time.Second, func() bool { return b.recv.delivered("/w") == subs })
	if n := dl.workers.Load(); n < 1 || n > subs-4 {
		t.Errorf("%d delivery goroutines after a burst of %d jobs", n, subs-4)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := dl.workers.Load(); n != 0 {
		t.Errorf("%d delivery goroutines left after the stop", n)
	}
}
