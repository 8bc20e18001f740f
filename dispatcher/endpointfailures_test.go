package dispatcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/subscribers"
)

// shiftedClock runs with the real time, shifted by an offset a test moves
// forward: days pass in an instant while timers and the server's own time
// (leases, TTLs) keep running.
type shiftedClock struct{ offset atomic.Int64 }

func (c *shiftedClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftedClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// failingSetup runs a dispatcher on clk whose webhook retries come 100 ms
// apart, many times over.
func failingSetup(t *testing.T, clk *shiftedClock, mutate func(*ChannelConfig)) *testBundle {
	none := 0.0
	return setup(t, bundleOpts{cfg: func(c *Config) {
		c.Now = clk.Now
		cc := ChannelConfig{MaxDeliver: 1000, Retry: Backoff{Schedule: []time.Duration{100 * time.Millisecond}, Min: time.Millisecond, Jitter: &none},
			Breaker: BreakerConfig{Threshold: -1}}
		if mutate != nil {
			mutate(&cc)
		}
		c.Channels[channels.Webhook] = cc
	}})
}

// subscriberWithEmail is a webhook subscriber who also has an email
// endpoint, where the endpoint-disabled notice goes.
func (b *testBundle) subscriberWithEmail(id, path string) *subscribers.Subscriber {
	s := b.webhookSubscriber(id, path)
	s.Endpoints = append(s.Endpoints, subscribers.Endpoint{ID: "mail", Channel: channels.Email, Address: "ops@" + id + ".example"})
	return s
}

// streak returns the failing streak of a webhook endpoint, from the
// dispatcher's mirror.
func (b *testBundle) streak(sub, ep string) (EndpointFailure, bool) {
	for _, f := range b.d.FailingEndpoints() {
		if f.SubscriberID == sub && f.EndpointID == ep && f.Channel == channels.Webhook {
			return f, true
		}
	}
	return EndpointFailure{}, false
}

// stored returns the bucket's entry of a webhook endpoint's streak.
func (b *testBundle) stored(sub, ep string) (EndpointFailure, bool) {
	b.t.Helper()
	e, err := b.d.topo.EndpointFailures.Get(b.ctx, failureKey(channels.Webhook, sub, ep))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return EndpointFailure{}, false
	}
	if err != nil {
		b.t.Fatal(err)
	}
	var f EndpointFailure
	if err := json.Unmarshal(e.Value(), &f); err != nil {
		b.t.Fatal(err)
	}
	return f, true
}

// TestEndpointFailingForDaysDisabled: an endpoint whose every attempt
// fails keeps its streak's start across attempts; the first failure once
// five days have passed disables it, records why, and emails its owner.
func TestEndpointFailingForDaysDisabled(t *testing.T) {
	t.Parallel()
	clk := &shiftedClock{}
	b := failingSetup(t, clk, nil)
	b.recv.script("/down", func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	b.putSubscriber(b.subscriberWithEmail("m1", "/down"))
	start := clk.Now()
	b.publish(event("INC-DOWN", 1, "investigating"))
	b.waitFor("three failed attempts", 20*time.Second, func() bool {
		f, ok := b.stored("m1", "wh")
		return ok && f.Failures >= 3
	})
	f, _ := b.streak("m1", "wh")
	if f.Since.Before(start.Add(-time.Second)) || f.Since.After(clk.Now()) || !f.Last.After(f.Since) || f.Target != targetHash(b.recv.url("/down")) {
		t.Errorf("streak %+v, want it to start at the first failure", f)
	}
	if b.d.cfg.Channels[channels.Webhook].DisableAfter != 5*24*time.Hour {
		t.Fatalf("DisableAfter defaults to %s", b.d.cfg.Channels[channels.Webhook].DisableAfter)
	}
	// Four days on, still failing: kept, not disabled.
	clk.advance(4 * 24 * time.Hour)
	failures := f.Failures
	b.waitFor("more failures four days on", 20*time.Second, func() bool {
		g, ok := b.stored("m1", "wh")
		return ok && g.Failures > failures+2
	})
	if s, _, _ := b.d.store.Get(b.ctx, "m1"); s.Endpoint("wh").Disabled != nil {
		t.Fatal("disabled after four days")
	}
	// Five days and a minute after the first failure: disabled.
	clk.advance(24*time.Hour + time.Minute)
	b.waitFor("endpoint disabled", 20*time.Second, func() bool {
		s, _, err := b.d.store.Get(b.ctx, "m1")
		return err == nil && s.Endpoint("wh").Disabled != nil
	})
	s, _, _ := b.d.store.Get(b.ctx, "m1")
	if reason := s.Endpoint("wh").Disabled.Reason; !strings.Contains(reason, "every attempt failed for 5d") || !strings.Contains(reason, "status 503") {
		t.Errorf("disabled for %q", reason)
	}
	id := DeliveryID("INC-DOWN:1", "m1", "wh")
	b.waitFor("the refusal recorded", 10*time.Second, func() bool { return b.lastOutcome("m1", id) == Failed })
	recs := b.delivery("m1", id)
	last := recs[len(recs)-1]
	if last.Action != channels.DisableEndpoint.String() || last.Status != http.StatusServiceUnavailable {
		t.Errorf("last record %+v, want the disabling failure with its status", last)
	}
	b.waitFor("the endpoint-disabled notice", 10*time.Second, func() bool {
		for _, p := range outboxFiles(t, filepath.Join(b.outbox, channels.Email)) {
			data, _ := os.ReadFile(p)
			text := strings.NewReplacer("=\r\n", "", "=\n", "").Replace(string(data))
			if strings.Contains(text, "every attempt failed") {
				return true
			}
		}
		return false
	})
	b.waitFor("the streak cleared", 10*time.Second, func() bool {
		_, stored := b.stored("m1", "wh")
		_, mirrored := b.streak("m1", "wh")
		return !stored && !mirrored
	})
	dls, err := b.d.dlq.List(b.ctx, 0, 10)
	if err != nil || len(dls) != 1 || !strings.Contains(dls[0].Reason, "every attempt failed") {
		t.Errorf("dead letters %+v, %v", dls, err)
	}
}

// TestSuccessEndsTheFailingStreak: one delivery clears the streak, so an
// endpoint that failed six days ago, then worked, is not disabled by its
// next failure.
func TestSuccessEndsTheFailingStreak(t *testing.T) {
	t.Parallel()
	clk := &shiftedClock{}
	b := failingSetup(t, clk, nil)
	var fail atomic.Bool
	fail.Store(true)
	b.recv.script("/flaky", func(n int, w http.ResponseWriter) {
		if fail.Load() {
			w.WriteHeader(http.StatusNotFound) // a deploy: retried, not refused
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	b.putSubscriber(b.subscriberWithEmail("m1", "/flaky"))
	b.publish(event("INC-FLAKY", 1, "investigating"))
	b.waitFor("a streak", 20*time.Second, func() bool { _, ok := b.stored("m1", "wh"); return ok })
	fail.Store(false)
	b.waitFor("delivered", 20*time.Second, func() bool { return b.recv.delivered("/flaky") == 1 })
	b.waitFor("the streak cleared", 10*time.Second, func() bool {
		_, stored := b.stored("m1", "wh")
		_, mirrored := b.streak("m1", "wh")
		return !stored && !mirrored
	})
	recs := b.delivery("m1", DeliveryID("INC-FLAKY:1", "m1", "wh"))
	if got := outcomeList(recs); !strings.HasPrefix(got, "retry") || !strings.HasSuffix(got, ",delivered") {
		t.Errorf("outcomes %s, want 404s retried then delivered", got)
	}
	clk.advance(6 * 24 * time.Hour)
	fail.Store(true)
	b.publish(event("INC-FLAKY", 2, "resolved"))
	b.waitFor("a new streak", 20*time.Second, func() bool {
		f, ok := b.stored("m1", "wh")
		return ok && f.Failures >= 2
	})
	if s, _, _ := b.d.store.Get(b.ctx, "m1"); s.Endpoint("wh").Disabled != nil {
		t.Fatal("an endpoint that worked six days ago was disabled by its next failure")
	}
	if f, _ := b.stored("m1", "wh"); clk.Now().Sub(f.Since) > time.Minute {
		t.Errorf("new streak since %s, want about now (%s)", f.Since, clk.Now())
	}
}

// TestStaleStreakNotDisabled: a streak older than DisableAfter that a
// success should have ended (writes of two processes crossed) does not
// disable the endpoint: the delivery log shows the success, and the streak
// starts again. A streak on the endpoint's former address does not count
// either.
func TestStaleStreakNotDisabled(t *testing.T) {
	t.Parallel()
	clk := &shiftedClock{}
	b := failingSetup(t, clk, nil)
	var fail atomic.Bool
	b.recv.script("/m1", func(n int, w http.ResponseWriter) {
		if fail.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	b.recv.script("/m2", func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	b.putSubscriber(b.subscriberWithEmail("m1", "/m1"))
	sinceBefore := clk.Now().Add(-time.Minute)
	b.publish(event("INC-STALE", 1, "investigating"))
	b.waitFor("m1 delivered", 20*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })
	b.putSubscriber(b.subscriberWithEmail("m2", "/m2"))
	// A streak written as if by another process, from before m1's
	// success; and a streak of m2 on an address it no longer has.
	put := func(sub string, f EndpointFailure) {
		data, _ := json.Marshal(f)
		if _, err := b.d.topo.EndpointFailures.Put(b.ctx, failureKey(channels.Webhook, sub, "wh"), data); err != nil {
			t.Fatal(err)
		}
	}
	put("m1", EndpointFailure{Channel: channels.Webhook, SubscriberID: "m1", EndpointID: "wh", Since: sinceBefore, Last: sinceBefore, Failures: 9, Target: targetHash(b.recv.url("/m1"))})
	put("m2", EndpointFailure{Channel: channels.Webhook, SubscriberID: "m2", EndpointID: "wh", Since: sinceBefore, Last: sinceBefore, Failures: 9, Target: targetHash("https://old.example/hook")})
	b.waitFor("the streaks mirrored", 10*time.Second, func() bool {
		f1, ok1 := b.streak("m1", "wh")
		f2, ok2 := b.streak("m2", "wh")
		return ok1 && ok2 && f1.Failures == 9 && f2.Failures == 9
	})
	clk.advance(6 * 24 * time.Hour)
	fail.Store(true)
	b.publish(event("INC-STALE", 2, "identified"))
	for _, sub := range []string{"m1", "m2"} {
		b.waitFor(sub+"'s streak started again", 20*time.Second, func() bool {
			f, ok := b.stored(sub, "wh")
			return ok && f.Since.After(sinceBefore.Add(24*time.Hour))
		})
		if s, _, _ := b.d.store.Get(b.ctx, sub); s.Endpoint("wh").Disabled != nil {
			t.Errorf("%s disabled: %s", sub, s.Endpoint("wh").Disabled.Reason)
		}
	}
}

// TestDisableAfterOff: with DisableAfter negative, a failing endpoint keeps
// no streak and is never disabled.
func TestDisableAfterOff(t *testing.T) {
	t.Parallel()
	clk := &shiftedClock{}
	b := failingSetup(t, clk, func(c *ChannelConfig) { c.DisableAfter = -1 })
	b.recv.script("/down", func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	b.putSubscriber(b.subscriberWithEmail("m1", "/down"))
	b.publish(event("INC-OFF", 1, "investigating"))
	b.waitFor("failures", 20*time.Second, func() bool { return len(b.recv.hitsFor("/down")) >= 2 })
	clk.advance(30 * 24 * time.Hour)
	n := len(b.recv.hitsFor("/down"))
	b.waitFor("failures thirty days on", 20*time.Second, func() bool { return len(b.recv.hitsFor("/down")) >= n+2 })
	if s, _, _ := b.d.store.Get(b.ctx, "m1"); s.Endpoint("wh").Disabled != nil {
		t.Fatal("disabled")
	}
	if _, ok := b.stored("m1", "wh"); ok {
		t.Error("a streak kept with DisableAfter off")
	}
}

// TestFourHundredsDoNotTripTheBreaker: a host that answers 404 to many
// endpoints at once works: each is retried on its schedule, none is
// deferred by an open circuit, and the host's healthy endpoint is served
// at once.
func TestFourHundredsDoNotTripTheBreaker(t *testing.T) {
	t.Parallel()
	const missing = 12
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		none := 0.0
		c.Channels[channels.Webhook] = ChannelConfig{PerDestination: 1, Breaker: BreakerConfig{Threshold: 3},
			Retry: Backoff{Schedule: []time.Duration{time.Hour}, Jitter: &none}}
	}})
	for i := range missing {
		b.recv.script("/gone-for-now/"+subID(i), func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) })
		b.putSubscriber(b.webhookSubscriber(subID(i), "/gone-for-now/"+subID(i)))
	}
	b.putSubscriber(b.webhookSubscriber("z_ok", "/ok"))
	b.publish(event("INC-404", 1, "investigating"))
	b.waitFor("every endpoint tried", 20*time.Second, func() bool {
		for i := range missing {
			if len(b.recv.hitsFor("/gone-for-now/"+subID(i))) != 1 {
				return false
			}
		}
		return b.recv.delivered("/ok") == 1
	})
	for i := range missing {
		id := DeliveryID("INC-404:1", subID(i), "wh")
		b.waitFor("the record", 10*time.Second, func() bool { return b.lastOutcome(subID(i), id) != "" })
		for _, r := range b.delivery(subID(i), id) {
			if r.Outcome != Retrying || r.Status != http.StatusNotFound || r.Attempt != 1 {
				t.Errorf("%s: record %+v, want the 404 retried", subID(i), r)
			}
		}
	}
}

func TestAnsweredRefusal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&channels.ProviderError{Status: 404}, true},
		{fmt.Errorf("webhook h: %w", channels.RetryAfter(0, &channels.ProviderError{Status: 401})), true},
		{&channels.ProviderError{Status: 301}, true},
		{&channels.ProviderError{Status: 429}, false},
		{&channels.ProviderError{Status: 408}, false},
		{&channels.ProviderError{Status: 425}, false},
		{&channels.ProviderError{Status: 503}, false},
		{&channels.ProviderError{Code: "5.1.1"}, false},
		{errors.New("connection refused"), false},
		{nil, false},
	} {
		if got := answeredRefusal(tc.err); got != tc.want {
			t.Errorf("answeredRefusal(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestRoundAge(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		5*24*time.Hour + time.Minute:    "5d",
		5*24*time.Hour + 3*time.Hour:    "5d3h",
		90*time.Minute + 10*time.Second: "1h30m0s",
	} {
		if got := roundAge(d); got != want {
			t.Errorf("roundAge(%s) = %q, want %q", d, got, want)
		}
	}
}
