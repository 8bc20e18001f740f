package dispatcher

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/internal/natstest"
	"github.com/heraldhq/herald/subscribers"

	"log/slog"
)

// TestSMSCapTake: the per-subscriber cap spares P1, the platform cap does
// not; Check tells without counting; a new day starts again; each refusal
// is counted by the metric and logged.
func TestSMSCapTake(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := natstest.Connect(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC).UnixNano())
	logs := &channelstest.SyncBuffer{}
	reg := prometheus.NewRegistry()
	c, err := NewSMSCap(ctx, js, SMSCapConfig{PerSubscriber: 2, Platform: 4, Registerer: reg,
		Now: func() time.Time { return time.Unix(0, now.Load()) }, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	take := func(sub string, p incident.Priority, want string) {
		t.Helper()
		got, err := c.Take(ctx, sub, p)
		if err != nil || got != want {
			t.Fatalf("Take(%s, %s) = %q, %v; want %q", sub, p, got, err, want)
		}
	}
	take("a", incident.P2, "")
	take("a", incident.P3, "")
	if got, _ := c.Check(ctx, "a"); got != CapSubscriber {
		t.Fatalf("Check = %q", got)
	}
	take("a", incident.P3, CapSubscriber)
	take("a", incident.P1, "") // P1: no subscriber cap
	take("b", incident.P2, "")
	if got, _ := c.Check(ctx, "c"); got != CapPlatform {
		t.Fatalf("Check at the platform cap = %q", got)
	}
	take("c", incident.P1, CapPlatform) // never past the platform cap
	if v := testutil.ToFloat64(c.capped.WithLabelValues(CapSubscriber)); v != 1 {
		t.Fatalf("subscriber refusals %v", v)
	}
	if v := testutil.ToFloat64(c.capped.WithLabelValues(CapPlatform)); v != 1 {
		t.Fatalf("platform refusals %v", v)
	}
	for _, line := range []string{"daily SMS cap of a subscriber reached", "daily SMS cap of the platform reached"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("no log line %q:\n%s", line, logs.String())
		}
	}
	now.Add(int64(24 * time.Hour))
	take("a", incident.P3, "")
	// A second cap over the same bucket (another process) sees the counts.
	other, err := NewSMSCap(ctx, js, SMSCapConfig{PerSubscriber: 1, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := other.Take(ctx, "a", incident.P3); got != CapSubscriber {
		t.Fatalf("the other process: %q", got)
	}
}

// TestSMSCapInTheLoop: an SMS past the subscriber's daily cap is not sent
// and is recorded "capped"; a P1 update still goes.
func TestSMSCapInTheLoop(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	c, err := NewSMSCap(b.ctx, b.js, SMSCapConfig{PerSubscriber: 1})
	if err != nil {
		t.Fatal(err)
	}
	b.d.smsCap = c
	done := make(chan struct{})
	go func() { defer close(done); _ = b.d.Run(b.ctx) }()
	t.Cleanup(func() { b.stop(); <-done })
	b.waitFor("dispatcher ready", 10*time.Second, b.d.Ready)
	sub := &subscribers.Subscriber{ID: "m_sms", Locale: "fr", Endpoints: []subscribers.Endpoint{{ID: "sms", Channel: "sms", Address: "+33612345678"}}}
	b.putSubscriber(sub)
	ev := func(id, prio string) string {
		return fmt.Sprintf(`{"id":"%s:1","incident_id":"%s","sequence":1,"status":"investigating","priority":"%s","title":"T","body":"B"}`, id, id, prio)
	}
	// Updates of different incidents fan out at once: one at a time, so
	// that the count reaches each in order.
	for _, e := range []struct {
		id, prio string
		want     Outcome
	}{{"CAP-1", "P2", Outboxed}, {"CAP-2", "P2", Capped}, {"CAP-3", "P1", Outboxed}} {
		b.publish(ev(e.id, e.prio))
		b.waitFor(e.id+" "+string(e.want), 20*time.Second, func() bool {
			return b.lastOutcome(sub.ID, DeliveryID(e.id+":1", sub.ID, "sms")) == e.want
		})
	}
}
