package dispatcher

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"time"
)

// destinations keeps, per destination (a webhook host, a provider), a bound
// on sends in flight and a circuit breaker, so that one slow or dead
// destination cannot hold every worker of its channel.
type destinations struct {
	perDest int
	cfg     BreakerConfig
	now     func() time.Time

	mu    sync.Mutex
	state map[string]*destination
}

type destination struct {
	slots    chan struct{}
	users    int // goroutines holding or waiting for a slot; the entry is dropped at 0
	failures int
	openedAt time.Time
	cooldown time.Duration
	probing  bool
}

func newDestinations(perDest int, cfg BreakerConfig, now func() time.Time) *destinations {
	return &destinations{perDest: perDest, cfg: cfg, now: now, state: map[string]*destination{}}
}

// destinationKey groups endpoints by where their sends go: the host of URL
// endpoints, the channel's provider otherwise.
func destinationKey(channel, target string) string {
	// Fast path for the usual http(s)://host[:port]/path: the same host
	// url.Parse finds, without its allocations.
	for _, scheme := range [...]string{"https://", "http://"} {
		rest, ok := strings.CutPrefix(target, scheme)
		if !ok {
			continue
		}
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if host := rest[:end]; host != "" && plainHost(host) {
			return channel + "|" + host
		}
		break
	}
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		return channel + "|" + u.Host
	}
	return channel
}

// plainHost reports whether host is letters, digits, dots and hyphens,
// with an optional numeric port: nothing url.Parse would treat specially.
func plainHost(host string) bool {
	name, port, hasPort := strings.Cut(host, ":")
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
		default:
			return false
		}
	}
	if !hasPort {
		return true
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

// acquire waits for a send slot to key. It first checks the breaker: when
// the circuit is open it returns false and how long until it half-opens.
func (ds *destinations) acquire(ctx context.Context, key string) (release func(transient bool), ok bool, wait time.Duration, err error) {
	ds.mu.Lock()
	d := ds.state[key]
	if d == nil {
		d = &destination{slots: make(chan struct{}, ds.perDest), cooldown: ds.cfg.Cooldown}
		ds.state[key] = d
	}
	if ds.cfg.Threshold > 0 && !d.openedAt.IsZero() {
		reopen := d.openedAt.Add(d.cooldown)
		if now := ds.now(); now.Before(reopen) || d.probing {
			ds.mu.Unlock()
			if w := reopen.Sub(now); w > 0 {
				return nil, false, w, nil
			}
			return nil, false, d.cooldown / 4, nil // a probe is already under way
		}
		d.probing = true // half-open: this send is the probe
	}
	d.users++
	ds.mu.Unlock()

	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		ds.done(key, d, nil)
		return nil, false, 0, ctx.Err()
	}
	var once sync.Once
	return func(transient bool) {
		once.Do(func() {
			<-d.slots
			ds.done(key, d, &transient)
		})
	}, true, 0, nil
}

// done updates the breaker with a send's result (nil: no send happened) and
// forgets idle, healthy destinations.
func (ds *destinations) done(key string, d *destination, transient *bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	d.users--
	if transient != nil && ds.cfg.Threshold > 0 {
		if *transient {
			d.failures++
			switch {
			case d.probing: // the probe failed: open again, longer
				d.probing = false
				d.openedAt = ds.now()
				d.cooldown = min(d.cooldown*2, ds.cfg.MaxCooldown)
			case d.openedAt.IsZero() && d.failures >= ds.cfg.Threshold:
				d.openedAt = ds.now()
			}
		} else {
			d.failures, d.probing, d.openedAt, d.cooldown = 0, false, time.Time{}, ds.cfg.Cooldown
		}
	} else if transient == nil && d.probing {
		d.probing = false // the probe never ran: let another try
	}
	if d.users == 0 && d.failures == 0 && d.openedAt.IsZero() {
		delete(ds.state, key)
	}
}
