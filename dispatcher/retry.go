package dispatcher

import (
	"errors"
	"time"
)

// RetryPolicy computes how long to wait before the next attempt of a job.
//
// JetStream's consumer BackOff applies to ack timeouts only, not to NAKs, so
// the delivery loop asks the policy for each delay and calls NakWithDelay.
type RetryPolicy interface {
	// Delay returns the wait before attempt+1, given that attempt (1-based)
	// just failed and the provider asked for at least hint (0: no hint).
	Delay(attempt int, hint time.Duration) time.Duration
}

// Backoff is the default [RetryPolicy]: exponential backoff with jitter, or
// a fixed schedule, never shorter than the provider's Retry-After.
type Backoff struct {
	// Schedule, when set, gives the delay after each failed attempt; the
	// last entry repeats. It replaces the exponential series, e.g. the
	// Standard Webhooks schedule 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 24h.
	Schedule []time.Duration
	// Base is the delay after the first failure of the exponential
	// series (Base × 2^(attempt-1)). Defaults to 5 s.
	Base time.Duration
	// Max caps each delay. Defaults to 12 h.
	Max time.Duration
	// Min is the smallest delay after jitter. Defaults to 1 s.
	Min time.Duration
	// Jitter is the randomised fraction of each delay: 1 is "full
	// jitter" (uniform in [0, d)), 0 none. Defaults to 1.
	Jitter *float64
	// Rand returns a uniform number in [0, 1). Set by the dispatcher
	// from its Config.Rand when nil.
	Rand func() float64
}

// DefaultBackoff is exponential from 5 s with full jitter, capped at 12 h.
// With the default 25 attempts it keeps retrying for about three days,
// like the Standard Webhooks recommendation, and covers most of the four
// to five days RFC 5321 asks for temporary mail failures.
func DefaultBackoff() Backoff { return Backoff{}.WithDefaults() }

// WithDefaults returns b with every unset field at its default.
func (b Backoff) WithDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = 5 * time.Second
	}
	if b.Max <= 0 {
		b.Max = 12 * time.Hour
	}
	if b.Min <= 0 {
		b.Min = time.Second
	}
	if b.Jitter == nil {
		full := 1.0
		b.Jitter = &full
	}
	return b
}

func (b Backoff) validate() error {
	if *b.Jitter < 0 || *b.Jitter > 1 {
		return errors.New("retry jitter must be between 0 and 1")
	}
	if b.Min > b.Max {
		return errors.New("retry min must not exceed max")
	}
	for _, d := range b.Schedule {
		if d <= 0 {
			return errors.New("retry schedule entries must be positive")
		}
	}
	return nil
}

// Delay implements [RetryPolicy].
func (b Backoff) Delay(attempt int, hint time.Duration) time.Duration {
	attempt = max(attempt, 1)
	var d time.Duration
	if n := len(b.Schedule); n > 0 {
		d = b.Schedule[min(attempt, n)-1]
	} else {
		d = b.Base
		for i := 1; i < attempt && d < b.Max; i++ {
			d *= 2
		}
	}
	d = min(d, b.Max)
	if b.Jitter != nil && *b.Jitter > 0 && b.Rand != nil {
		d -= time.Duration(float64(d) * *b.Jitter * b.Rand())
	}
	d = max(d, b.Min)
	return max(d, hint)
}
