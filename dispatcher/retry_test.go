package dispatcher

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	none, half := 0.0, 0.5
	fixed := func(v float64) func() float64 { return func() float64 { return v } }
	for _, tc := range []struct {
		name    string
		b       Backoff
		attempt int
		hint    time.Duration
		want    time.Duration
	}{
		{"first, no jitter", Backoff{Jitter: &none}, 1, 0, 5 * time.Second},
		{"third, no jitter", Backoff{Jitter: &none}, 3, 0, 20 * time.Second},
		{"capped", Backoff{Jitter: &none, Max: time.Minute}, 30, 0, time.Minute},
		{"huge attempt does not overflow", Backoff{Jitter: &none}, 1000, 0, 12 * time.Hour},
		{"zero attempt counts as first", Backoff{Jitter: &none}, 0, 0, 5 * time.Second},
		{"full jitter at top of range", Backoff{Rand: fixed(0)}, 2, 0, 10 * time.Second},
		{"full jitter at bottom, floored", Backoff{Rand: fixed(0.9999)}, 1, 0, time.Second},
		{"half jitter", Backoff{Jitter: &half, Rand: fixed(0.5)}, 3, 0, 15 * time.Second},
		{"hint wins", Backoff{Jitter: &none}, 1, 2 * time.Minute, 2 * time.Minute},
		{"hint below delay ignored", Backoff{Jitter: &none}, 3, time.Second, 20 * time.Second},
		{"schedule", Backoff{Jitter: &none, Schedule: []time.Duration{time.Second, time.Minute}}, 2, 0, time.Minute},
		{"schedule repeats last", Backoff{Jitter: &none, Schedule: []time.Duration{time.Second, time.Minute}}, 9, 0, time.Minute},
		{"schedule with min", Backoff{Jitter: &none, Min: time.Millisecond, Schedule: []time.Duration{100 * time.Millisecond}}, 1, 0, 100 * time.Millisecond},
	} {
		b := tc.b.WithDefaults()
		if got := b.Delay(tc.attempt, tc.hint); got != tc.want {
			t.Errorf("%s: Delay(%d, %v) = %v, want %v", tc.name, tc.attempt, tc.hint, got, tc.want)
		}
	}
}

func TestBackoffDefaultHorizon(t *testing.T) {
	t.Parallel()
	// Without jitter the 24 retries of the default 25 attempts span the
	// ceiling of the schedule; with full jitter the expectation is half.
	none := 0.0
	b := Backoff{Jitter: &none}.WithDefaults()
	var total time.Duration
	for a := 1; a < 25; a++ {
		total += b.Delay(a, 0)
	}
	if total < 5*24*time.Hour || total > 7*24*time.Hour {
		t.Fatalf("default schedule spans %v, want 5 to 7 days at the ceiling (about 3 days expected with full jitter)", total)
	}
}

func TestBackoffValidate(t *testing.T) {
	t.Parallel()
	bad := 1.5
	for _, b := range []Backoff{
		{Jitter: &bad},
		{Min: time.Hour, Max: time.Minute},
		{Schedule: []time.Duration{time.Second, 0}},
	} {
		if err := b.WithDefaults().validate(); err == nil {
			t.Errorf("%+v: validate accepted it", b)
		}
	}
}
