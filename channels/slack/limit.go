package slack

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/channels"
)

// maxLimiters is the number of per-channel limiters above which idle ones
// (whose bucket is full again) are dropped.
const maxLimiters = 4096

// limiters spaces the messages posted to each Slack channel or webhook.
type limiters struct {
	interval time.Duration // < 0: off
	maxWait  time.Duration
	now      func() time.Time

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newLimiters(interval, maxWait time.Duration, now func() time.Time) *limiters {
	return &limiters{interval: interval, maxWait: maxWait, now: now, m: make(map[string]*rate.Limiter)}
}

// wait takes key's next turn: at once, after a wait of at most maxWait
// (and within ctx's deadline), or not at all, returning a retryable error
// carrying the delay.
func (l *limiters) wait(ctx context.Context, key string) error {
	if l.interval < 0 {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	lim := l.m[key]
	if lim == nil {
		if len(l.m) >= maxLimiters {
			for k, v := range l.m {
				if v.TokensAt(now) >= 1 {
					delete(l.m, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Every(l.interval), 1)
		l.m[key] = lim
	}
	r := lim.ReserveN(now, 1)
	l.mu.Unlock()
	d := r.DelayFrom(now)
	if d == 0 {
		return nil
	}
	deadline, hasDeadline := ctx.Deadline()
	if d > l.maxWait || (hasDeadline && deadline.Before(now.Add(d))) {
		r.CancelAt(now)
		return channels.RetryAfter(d, fmt.Errorf("%w: next turn in %s", ErrRateLimited, d.Round(time.Millisecond)))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.CancelAt(l.now())
		return ctx.Err()
	}
}

// keyLocks serialises the sends of one thread within the process.
type keyLocks struct {
	mu sync.Mutex
	m  map[ThreadKey]*keyLock
}

type keyLock struct {
	ch   chan struct{}
	refs int
}

// lock waits for key's lock, or for ctx to end. The returned function
// unlocks.
func (l *keyLocks) lock(ctx context.Context, key ThreadKey) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[ThreadKey]*keyLock)
	}
	kl := l.m[key]
	if kl == nil {
		kl = &keyLock{ch: make(chan struct{}, 1)}
		l.m[key] = kl
	}
	kl.refs++
	l.mu.Unlock()
	select {
	case kl.ch <- struct{}{}:
		return func() {
			<-kl.ch
			l.release(key, kl)
		}, nil
	case <-ctx.Done():
		l.release(key, kl)
		return nil, ctx.Err()
	}
}

func (l *keyLocks) release(key ThreadKey, kl *keyLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if kl.refs--; kl.refs == 0 {
		delete(l.m, key)
	}
}
