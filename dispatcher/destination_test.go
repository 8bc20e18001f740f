package dispatcher

import (
	"net/url"
	"testing"
	"time"
)

// slowDestinationKey is destinationKey without its fast path.
func slowDestinationKey(channel, target string) string {
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		return channel + "|" + u.Host
	}
	return channel
}

func TestDestinationKey(t *testing.T) {
	for _, tc := range []struct{ channel, target, want string }{
		{"webhook", "https://hooks.example.com/a/b?c#d", "webhook|hooks.example.com"},
		{"webhook", "https://Hooks.Example.com:8443", "webhook|Hooks.Example.com:8443"},
		{"webhook", "http://127.0.0.1:9/x", "webhook|127.0.0.1:9"},
		{"webhook", "https://h.example:", "webhook|h.example:"},
		{"webhook", "https://h.example:abc/", "webhook"},
		{"webhook", "https://user:pw@h.example/", "webhook|h.example"},
		{"webhook", "https://[::1]:8080/", "webhook|[::1]:8080"},
		{"webhook", "https:///path", "webhook"},
		{"email", "ops@example.com", "email"},
		{"sms", "+33612345678", "sms"},
		// Slack paces each channel and incoming webhook on its own.
		{"slack", "C0123ABCD", "slack|C0123ABCD"},
		{"slack", " C0123ABCD ", "slack|C0123ABCD"},
		{"slack", "https://hooks.slack.com/services/T0/B0/x", "slack|https://hooks.slack.com/services/T0/B0/x"},
	} {
		if got := destinationKey(tc.channel, tc.target); got != tc.want {
			t.Errorf("destinationKey(%s, %q) = %q, want %q", tc.channel, tc.target, got, tc.want)
		}
	}
}

// FuzzDestinationKey checks the fast path against url.Parse.
func FuzzDestinationKey(f *testing.F) {
	for _, s := range []string{"https://h.example/x", "http://h:1", "https://a@b/", "https://h.example:99999999999999999999/", "https://%41/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if got, want := destinationKey("webhook", target), slowDestinationKey("webhook", target); got != want {
			t.Fatalf("destinationKey(%q) = %q, url.Parse gives %q", target, got, want)
		}
	})
}

// grant asks for a slot of key and fails the test unless one is given at
// once; it returns the release of the slot.
func grant(t *testing.T, ds *destinations, key string) func(sendResult, time.Duration) []*task {
	t.Helper()
	tk := &task{key: key}
	granted, refused := ds.acquire(tk)
	if !granted {
		t.Fatalf("acquire %s: refused %+v, or queued; want a slot", key, refused)
	}
	return func(res sendResult, held time.Duration) []*task {
		started, _, _ := ds.release(key, tk.probe, res, held)
		return started
	}
}

// queue asks for a slot of key and fails the test unless the task is
// queued.
func queue(t *testing.T, ds *destinations, key string) *task {
	t.Helper()
	tk := &task{key: key}
	granted, refused := ds.acquire(tk)
	if granted || refused != nil {
		t.Fatalf("acquire %s: granted %v, refused %+v; want queued", key, granted, refused)
	}
	return tk
}

// refuse asks for a slot of key and fails the test unless it is refused
// with reason; it returns the suggested wait.
func refuse(t *testing.T, ds *destinations, key, reason string) time.Duration {
	t.Helper()
	tk := &task{key: key}
	granted, refused := ds.acquire(tk)
	if granted || refused == nil || refused.reason != reason {
		t.Fatalf("acquire %s: granted %v, refused %+v; want refused with %q", key, granted, refused, reason)
	}
	return refused.wait
}

// TestBreaker: consecutive transient failures open the circuit; while open,
// targets are refused until the cooldown ends; then one probe goes, and its
// failure doubles the cooldown, its success closes the circuit. A slot
// given back unused (stopping) neither counts nor resets.
func TestBreaker(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(4, 0, BreakerConfig{Threshold: 3, Cooldown: 10 * time.Second, MaxCooldown: 30 * time.Second}, clock.Now)
	const key = "webhook|hooks.example"

	grant(t, ds, key)(failedTransient, time.Second)
	grant(t, ds, key)(failedTransient, time.Second)
	grant(t, ds, key)(notSent, 0) // handed back: not a result
	grant(t, ds, key)(failedTransient, time.Second)
	if w := refuse(t, ds, key, reasonCircuitOpen); w != 10*time.Second {
		t.Errorf("open circuit: wait %v, want the 10s cooldown", w)
	}
	grant(t, ds, "webhook|other.example")(answered, time.Second) // other destinations are not concerned

	clock.Add(10 * time.Second)
	probe := grant(t, ds, key)
	if w := refuse(t, ds, key, reasonCircuitOpen); w != 10*time.Second/4 {
		t.Errorf("during the probe: wait %v, want a quarter of the cooldown", w)
	}
	probe(failedTransient, time.Second)
	if w := refuse(t, ds, key, reasonCircuitOpen); w != 20*time.Second {
		t.Errorf("after a failed probe: wait %v, want the doubled cooldown", w)
	}
	clock.Add(20 * time.Second)
	grant(t, ds, key)(failedTransient, time.Second)
	if w := refuse(t, ds, key, reasonCircuitOpen); w != 30*time.Second {
		t.Errorf("after a second failed probe: wait %v, want the 30s max cooldown", w)
	}

	clock.Add(30 * time.Second)
	grant(t, ds, key)(notSent, 0) // a probe handed back lets another try
	grant(t, ds, key)(answered, time.Second)
	for range 2 {
		grant(t, ds, key)(failedTransient, time.Second)
	}
	grant(t, ds, key)(answered, time.Second) // closed, and the count starts again
	for k, d := range ds.state {
		if d.failures != 0 || !d.openedAt.IsZero() || d.inflight != 0 {
			t.Errorf("%s: %+v, want healthy and idle", k, d)
		}
	}
	ds.sweep(clock.Now()) // idle entries (kept for their average send) go at a sweep
	if len(ds.state) != 0 {
		t.Errorf("idle destinations kept by a sweep: %d", len(ds.state))
	}
}

// TestCircuitOpeningTurnsQueueAway: the targets queued at a destination
// whose circuit opens are turned away with the circuit's wait.
func TestCircuitOpeningTurnsQueueAway(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(1, time.Minute, BreakerConfig{Threshold: 1, Cooldown: 10 * time.Second, MaxCooldown: time.Minute}, clock.Now)
	const key = "webhook|down.example"
	send := grant(t, ds, key)
	queue(t, ds, key)
	queue(t, ds, key)
	started, away, refused := ds.release(key, false, failedTransient, time.Second)
	if len(started) != 0 || len(away) != 2 || refused.reason != reasonCircuitOpen || refused.wait != 10*time.Second {
		t.Fatalf("after the failure that opens the circuit: started %d, turned away %d (%+v)", len(started), len(away), refused)
	}
	_ = send
}

// TestSlowStart: a destination's bound on sends in flight starts at two,
// grows by one with each answered send up to perDest, and halves on a
// transient failure; queued targets start as the bound allows.
func TestSlowStart(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(4, time.Minute, BreakerConfig{Threshold: -1}, clock.Now)
	const key = "webhook|new.example"
	a, b := grant(t, ds, key), grant(t, ds, key)
	queued := []*task{queue(t, ds, key), queue(t, ds, key), queue(t, ds, key)}
	// An answer raises the bound to 3: the freed slot and one more start.
	if started := a(answered, time.Second); len(started) != 2 || started[0] != queued[0] || started[1] != queued[1] {
		t.Fatalf("after an answer with 3 queued: %d started, want the first 2", len(started))
	}
	// A transient failure halves it (3 → 1): nothing more starts while
	// two sends are still in flight.
	if started := b(failedTransient, time.Second); len(started) != 0 {
		t.Fatalf("after a failure: %d started, want none", len(started))
	}
	if d := ds.state[key]; d.limit != 1 || d.inflight != 2 || len(d.queue) != 1 {
		t.Fatalf("state %+v", d)
	}
	rel := func(tk *task) func(sendResult, time.Duration) []*task {
		return func(res sendResult, held time.Duration) []*task {
			s, _, _ := ds.release(key, tk.probe, res, held)
			return s
		}
	}
	// An answer raises it to 2, with one send left in flight: the last
	// queued target starts.
	if started := rel(queued[0])(answered, time.Second); len(started) != 1 || started[0] != queued[2] {
		t.Fatal("the last queued target did not start")
	}
	rel(queued[1])(answered, time.Second)
	for range 5 {
		rel(queued[2])(answered, time.Second)
		queued[2] = &task{key: key}
		if granted, _ := ds.acquire(queued[2]); !granted {
			t.Fatal("no slot")
		}
	}
	if d := ds.state[key]; d.limit != 4 {
		t.Errorf("bound %d after many answers, want perDest 4", d.limit)
	}
}

// TestSlowDestinationBusy: with every slot of a destination taken, a target
// queues only when the sends ahead of it, at the destination's average
// send duration, end within maxWait; otherwise it is refused with that
// estimate, and the next one a turn later.
func TestSlowDestinationBusy(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(2, 10*time.Second, BreakerConfig{Threshold: -1}, clock.Now)
	const key = "webhook|slow.example"
	// Two sends that took 4s each set the average; then both slots are
	// taken.
	a, b := grant(t, ds, key), grant(t, ds, key)
	a(answered, 4*time.Second)
	hold1 := grant(t, ds, key)
	b(answered, 4*time.Second)
	hold2 := grant(t, ds, key)
	var queued []*task
	for range 4 { // ahead of each: 1, 2, 3, 4 → rounds of 2 slots: 4s, 4s, 8s, 8s
		queued = append(queued, queue(t, ds, key))
	}
	// Ahead: 2 in flight + 4 queued → 3 rounds of 4s = 12s > 10s.
	if w := refuse(t, ds, key, reasonBusy); w != 12*time.Second {
		t.Errorf("busy: wait %v, want 12s", w)
	}
	// The next one comes back a turn later: 4s per send over 2 slots.
	if w := refuse(t, ds, key, reasonBusy); w != 14*time.Second {
		t.Errorf("busy again: wait %v, want 14s", w)
	}
	var started []*task
	started = append(started, hold1(answered, 4*time.Second)...)
	started = append(started, hold2(answered, 4*time.Second)...)
	if len(started) != 2 || started[0] != queued[0] || started[1] != queued[1] {
		t.Fatalf("%d queued targets started, want the first two in order", len(started))
	}
}

// TestHangingDestinationTurnsTargetsAway: a target that waited maxWait in
// its destination's queue (the sends ahead hang, and no average tells it
// beforehand) is turned away as busy instead of waiting on.
func TestHangingDestinationTurnsTargetsAway(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(1, 50*time.Millisecond, BreakerConfig{Threshold: -1}, clock.Now)
	const key = "webhook|hangs.example"
	hung := grant(t, ds, key)
	waiting := queue(t, ds, key)
	if out, _ := ds.expired(); len(out) != 0 {
		t.Fatal("a target was turned away before maxWait")
	}
	clock.Add(51 * time.Millisecond)
	out, refused := ds.expired()
	if len(out) != 1 || out[0] != waiting || refused[0].reason != reasonBusy || !refused[0].busy || refused[0].wait < 50*time.Millisecond {
		t.Fatalf("waiting behind a hung send: turned away %d %+v; want busy", len(out), refused)
	}
	hung(answered, time.Minute)
	if ds.state[key] == nil || ds.state[key].avgSend != time.Minute {
		t.Fatal("the destination's average send was not kept")
	}
}

// TestBreakerProbeIsItsOwnSend: during the half-open probe, a send that
// began before the circuit opened and fails does not count as the probe;
// the probe's own result decides.
func TestBreakerProbeIsItsOwnSend(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(4, 0, BreakerConfig{Threshold: 2, Cooldown: 10 * time.Second, MaxCooldown: time.Minute}, clock.Now)
	const key = "webhook|flaky.example"
	for range 3 { // the bound grows to 4
		grant(t, ds, key)(answered, time.Second)
	}
	stale := grant(t, ds, key) // in flight while the circuit opens
	grant(t, ds, key)(failedTransient, time.Second)
	grant(t, ds, key)(failedTransient, time.Second)
	refuse(t, ds, key, reasonCircuitOpen)
	clock.Add(10 * time.Second)
	probe := grant(t, ds, key)
	stale(failedTransient, time.Second)
	if d := ds.state[key]; !d.probing || d.cooldown != 10*time.Second {
		t.Fatalf("a stale failure ended the probe: probing %v, cooldown %v", d.probing, d.cooldown)
	}
	probe(answered, time.Second)
	grant(t, ds, key)(answered, time.Second) // closed
}

// TestStaleFailuresForgotten: failures older than the longest cooldown are
// not consecutive with a new send.
func TestStaleFailuresForgotten(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(4, 0, BreakerConfig{Threshold: 2, Cooldown: 10 * time.Second, MaxCooldown: time.Minute}, clock.Now)
	const key = "webhook|once.example"
	grant(t, ds, key)(failedTransient, time.Second)
	clock.Add(2 * time.Minute)
	grant(t, ds, key)(failedTransient, time.Second)
	grant(t, ds, key)(answered, time.Second) // still closed: the first failure was stale
}
