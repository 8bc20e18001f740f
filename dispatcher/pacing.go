package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// pacer hands out send turns shared by every Herald process of a cluster:
// a key of the pacing bucket holds the next free turn of a destination
// (Slack's one message per second per channel) or of a provider's rate
// (SMTP relay, Twilio), and a reservation moves it forward with
// compare-and-swap. So the limits hold however many processes send.
type pacer struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// paceKey is the pacing key of a destination: a hash, so that the key
// holds no secret (a Slack incoming-webhook URL is one).
func paceKey(kind, name string) string {
	sum := sha256.Sum256([]byte(name))
	return kind + "." + hex.EncodeToString(sum[:12])
}

// reserve reserves n turns, interval apart, at key, and returns the first
// one, no earlier than now. When that turn is more than maxAhead away
// (maxAhead > 0), nothing is reserved and ok is false: the caller should
// come back about then.
func (p *pacer) reserve(ctx context.Context, key string, interval time.Duration, n int, maxAhead time.Duration) (start time.Time, ok bool, err error) {
	for range 50 {
		var rev uint64
		var next int64
		e, err := p.kv.Get(ctx, key)
		switch {
		case err == nil:
			rev = e.Revision()
			next, _ = strconv.ParseInt(string(e.Value()), 10, 64)
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return time.Time{}, false, fmt.Errorf("pacing: %w", err)
		}
		now := p.now()
		start = time.Unix(0, next)
		if start.Before(now) {
			start = now
		}
		if maxAhead > 0 && start.Sub(now) > maxAhead {
			return start, false, nil
		}
		end := []byte(strconv.FormatInt(start.Add(time.Duration(n)*interval).UnixNano(), 10))
		if rev == 0 {
			_, err = p.kv.Create(ctx, key, end)
		} else {
			_, err = p.kv.Update(ctx, key, end, rev)
		}
		if err == nil {
			return start, true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return time.Time{}, false, fmt.Errorf("pacing: %w", err)
		}
		// Another process reserved meanwhile: read again.
	}
	return time.Time{}, false, errors.New("pacing: too many concurrent reservations")
}

// atLeast moves the next free turn at key to no earlier than t, where
// reservations made meanwhile have not moved it further already. A paced
// send calls it with its answer's time plus the pace: turns are reserved a
// pace apart from their starts, and a request slowed on its way would
// otherwise reach the destination less than a pace before the next
// process's send.
func (p *pacer) atLeast(ctx context.Context, key string, t time.Time) error {
	for range 50 {
		e, err := p.kv.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("pacing: %w", err)
		}
		next, _ := strconv.ParseInt(string(e.Value()), 10, 64)
		if next >= t.UnixNano() {
			return nil
		}
		_, err = p.kv.Update(ctx, key, []byte(strconv.FormatInt(t.UnixNano(), 10)), e.Revision())
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("pacing: %w", err)
		}
	}
	return errors.New("pacing: too many concurrent reservations")
}

// globalRate limits a channel's sends per second over every process: the
// process reserves burst turns at a time from the pacer and hands them out
// in order.
type globalRate struct {
	p        *pacer
	key      string
	interval time.Duration
	burst    int

	mu   sync.Mutex
	next time.Time // this process's next reserved turn
	left int       // turns reserved and not yet handed out
}

func newGlobalRate(p *pacer, channel string, perSecond float64, burst int) *globalRate {
	return &globalRate{p: p, key: "rate." + channel, interval: time.Duration(float64(time.Second) / perSecond), burst: max(1, burst)}
}

// turn returns this process's next send turn, reserving more when it has
// none left (turns left over from a burst that passed are dropped).
func (r *globalRate) turn(ctx context.Context) (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left > 0 && r.next.Before(r.p.now().Add(-r.interval)) {
		r.left = 0
	}
	if r.left == 0 {
		start, _, err := r.p.reserve(ctx, r.key, r.interval, r.burst, 0)
		if err != nil {
			return time.Time{}, err
		}
		r.next, r.left = start, r.burst
	}
	at := r.next
	r.next, r.left = r.next.Add(r.interval), r.left-1
	return at, nil
}
