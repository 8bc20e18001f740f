package dispatcher

import (
	"context"
	"errors"
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

// grant acquires key and fails the test unless a turn is given at once.
func grant(t *testing.T, ds *destinations, key string) func(sendResult, time.Duration) {
	t.Helper()
	release, refused, err := ds.acquire(context.Background(), key)
	if err != nil || release == nil {
		t.Fatalf("acquire %s: refused %+v, err %v", key, refused, err)
	}
	return release
}

// refuse acquires key and fails the test unless the turn is refused with
// reason; it returns the suggested wait.
func refuse(t *testing.T, ds *destinations, key, reason string) time.Duration {
	t.Helper()
	release, refused, err := ds.acquire(context.Background(), key)
	if err != nil || release != nil || refused.reason != reason {
		if release != nil {
			release(notSent, 0)
		}
		t.Fatalf("acquire %s: refused %+v, err %v; want refused with %q", key, refused, err, reason)
	}
	return refused.wait
}

// TestBreaker: consecutive transient failures open the circuit; while open,
// jobs are refused until the cooldown ends; then one probe goes, and its
// failure doubles the cooldown, its success closes the circuit. A turn
// given back unused (stopping) neither counts nor resets.
func TestBreaker(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(4, 0, 0, BreakerConfig{Threshold: 3, Cooldown: 10 * time.Second, MaxCooldown: 30 * time.Second}, clock.Now)
	const key = "webhook|hooks.example"

	grant(t, ds, key)(failedTransient, time.Second)
	grant(t, ds, key)(failedTransient, time.Second)
	grant(t, ds, key)(notSent, 0) // handed back: not a result
	grant(t, ds, key)(failedTransient, time.Second)
	if w := refuse(t, ds, key, "destination failing; circuit open"); w != 10*time.Second {
		t.Errorf("open circuit: wait %v, want the 10s cooldown", w)
	}
	grant(t, ds, "webhook|other.example")(answered, time.Second) // other destinations are not concerned

	clock.Add(10 * time.Second)
	probe := grant(t, ds, key)
	if w := refuse(t, ds, key, "destination failing; circuit open"); w != 10*time.Second/4 {
		t.Errorf("during the probe: wait %v, want a quarter of the cooldown", w)
	}
	probe(failedTransient, time.Second)
	if w := refuse(t, ds, key, "destination failing; circuit open"); w != 20*time.Second {
		t.Errorf("after a failed probe: wait %v, want the doubled cooldown", w)
	}
	clock.Add(20 * time.Second)
	grant(t, ds, key)(failedTransient, time.Second)
	if w := refuse(t, ds, key, "destination failing; circuit open"); w != 30*time.Second {
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
		if d.failures != 0 || !d.openedAt.IsZero() || d.users != 0 {
			t.Errorf("%s: %+v, want healthy and idle", k, d)
		}
	}
	ds.sweep(clock.Now()) // idle entries (kept for their average send) go at a sweep
	if len(ds.state) != 0 {
		t.Errorf("idle destinations kept by a sweep: %d", len(ds.state))
	}
}

// TestPace: sends to one destination start a pace apart; a job whose turn
// is beyond maxWait is refused with about its wait; a job waiting for its
// turn holds no slot, and gives the turn up when its context ends.
func TestPace(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(1, time.Second, 2500*time.Millisecond, BreakerConfig{Threshold: -1}, clock.Now)
	const key = "slack|C0123ABCD"
	first := grant(t, ds, key)

	// The second and third turns are 1s and 2s away: they wait.
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			release, _, err := ds.acquire(ctx, key)
			if release != nil {
				release(notSent, 0)
			}
			errs <- err
		}()
	}
	waitUsers(t, ds, key, 3)
	// The fourth is 3s away, beyond maxWait.
	if w := refuse(t, ds, key, "destination busy"); w != 3*time.Second {
		t.Errorf("fourth turn: wait %v, want 3s", w)
	}
	// The jobs turned away come back one pace apart.
	if w := refuse(t, ds, key, "destination busy"); w != 4*time.Second {
		t.Errorf("fifth turn: wait %v, want 4s", w)
	}
	// Another destination is not paced by this one.
	grant(t, ds, "slack|C0OTHER01")(answered, 0)
	cancel()
	for range 2 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("waiting turn ended with %v, want its context's end", err)
		}
	}
	first(answered, 100*time.Millisecond)
	if _, ok := ds.state[key]; !ok {
		t.Fatal("a paced destination was forgotten before its next turn")
	}

	// Once the reserved turns have passed, the entry is idle and swept.
	clock.Add(5 * time.Second)
	ds.sweepAt = 1
	grant(t, ds, "slack|C0THIRD01")(answered, 0)
	if _, ok := ds.state[key]; ok {
		t.Error("an idle paced destination survived the sweep")
	}
	release := grant(t, ds, key)
	if next, want := ds.state[key].next, clock.Now().Add(time.Second); !next.Equal(want) {
		t.Errorf("a turn after the pace elapsed started at %v (next turn %v), want now (next %v)", next.Add(-time.Second), next, want)
	}
	release(answered, 0)
}

// TestSlowDestinationBusy: with every slot of a destination taken, a job
// waits only when the sends ahead of it, at the destination's average send
// duration, end within maxWait; otherwise it is refused with that estimate.
func TestSlowDestinationBusy(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(2, 0, 10*time.Second, BreakerConfig{Threshold: -1}, clock.Now)
	const key = "webhook|slow.example"
	// Two sends that took 4s each set the average; then both slots are
	// taken.
	a, b := grant(t, ds, key), grant(t, ds, key)
	a(answered, 4*time.Second)
	hold1 := grant(t, ds, key)
	b(answered, 4*time.Second)
	hold2 := grant(t, ds, key)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan func(sendResult, time.Duration), 4)
	for i := range 4 { // ahead of each: 1, 2, 3, 4 → rounds of 2 slots: 4s, 4s, 8s, 8s
		go func() {
			release, _, _ := ds.acquire(ctx, key)
			got <- release
		}()
		waitUsers(t, ds, key, 3+i)
	}
	// Ahead: 2 in flight + 4 waiting → 3 rounds of 4s = 12s > 10s.
	if w := refuse(t, ds, key, "destination busy"); w != 12*time.Second {
		t.Errorf("busy: wait %v, want 12s", w)
	}
	// The next one comes back a turn later: 4s per send over 2 slots.
	if w := refuse(t, ds, key, "destination busy"); w != 14*time.Second {
		t.Errorf("busy again: wait %v, want 14s", w)
	}
	hold1(answered, 4*time.Second)
	hold2(answered, 4*time.Second)
	for range 4 {
		r := <-got
		if r == nil {
			t.Fatal("a waiting job got no turn")
		}
		r(answered, 4*time.Second)
	}
}

func waitUsers(t *testing.T, ds *destinations, key string, n int) {
	t.Helper()
	for range 1000 {
		ds.mu.Lock()
		users := 0
		if d := ds.state[key]; d != nil {
			users = d.users
		}
		ds.mu.Unlock()
		if users == n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("destination %s never had %d users", key, n)
}

// TestHangingDestinationTurnsJobsAway: a job that waited maxWait for a
// slot (the sends ahead hang, and no average tells it beforehand) is
// turned away as busy instead of waiting on.
func TestHangingDestinationTurnsJobsAway(t *testing.T) {
	clock := frozenAt(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ds := newDestinations(1, 0, 50*time.Millisecond, BreakerConfig{Threshold: -1}, clock.Now)
	const key = "webhook|hangs.example"
	hung := grant(t, ds, key)
	release, refused, err := ds.acquire(context.Background(), key)
	if err != nil || release != nil || refused.reason != "destination busy" || !refused.busy || refused.wait < 50*time.Millisecond {
		t.Fatalf("waiting behind a hung send: release %v, refused %+v, err %v; want busy", release != nil, refused, err)
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
	ds := newDestinations(4, 0, 0, BreakerConfig{Threshold: 2, Cooldown: 10 * time.Second, MaxCooldown: time.Minute}, clock.Now)
	const key = "webhook|flaky.example"
	stale := grant(t, ds, key) // in flight while the circuit opens
	grant(t, ds, key)(failedTransient, time.Second)
	grant(t, ds, key)(failedTransient, time.Second)
	refuse(t, ds, key, "destination failing; circuit open")
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
	ds := newDestinations(4, 0, 0, BreakerConfig{Threshold: 2, Cooldown: 10 * time.Second, MaxCooldown: time.Minute}, clock.Now)
	const key = "webhook|once.example"
	grant(t, ds, key)(failedTransient, time.Second)
	clock.Add(2 * time.Minute)
	grant(t, ds, key)(failedTransient, time.Second)
	grant(t, ds, key)(answered, time.Second) // still closed: the first failure was stale
}
