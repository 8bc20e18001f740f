package dispatcher

import (
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/channels"
)

// destinations schedules the sends of one channel per destination (a
// webhook host, a Slack channel or incoming webhook, a provider): each has
// a bound on its sends in flight, a circuit breaker, and a queue of the
// targets waiting for a slot. A waiting target holds no goroutine and no
// channel slot, so one slow, busy or dead destination cannot hold the
// others' sends; a target whose wait would exceed maxWait is turned away
// (deferred) instead of queued, and one that waited that long in the
// queue is turned away too.
//
// A destination's bound starts low and grows by one with each answered
// send, up to perDest (a slow start), and halves on each transient failure:
// a host that hangs holds at most a couple of sends until its first time
// out, while one that answers reaches its full share within a few rounds.
type destinations struct {
	perDest int
	// maxWait is the longest a target waits for its destination's turn in
	// the process (0: no bound).
	maxWait time.Duration
	cfg     BreakerConfig
	now     func() time.Time

	mu    sync.Mutex
	state map[string]*destination
	// sweepAt is the number of entries above which idle ones kept for
	// their average are dropped.
	sweepAt int
}

type destination struct {
	// limit is the current bound on sends in flight (1..perDest);
	// inflight the sends holding a slot.
	limit    int
	inflight int
	// queue holds the targets waiting for a slot, oldest first.
	queue    []*task
	failures int
	openedAt time.Time
	cooldown time.Duration
	probing  bool
	// avgSend is a moving average of how long a send holds its slot: with
	// every slot taken, a queued target's wait is about avgSend per round
	// of the sends ahead of it.
	avgSend time.Duration
	// returns is when the next target turned away (busy) should come back.
	returns time.Time
	// lastUsed is when a target last asked for a turn.
	lastUsed time.Time
}

// initialLimit is a destination's bound on sends in flight before it
// answered anything.
const initialLimit = 2

// sendResult is what became of a send, for the breaker and the bound.
type sendResult int

const (
	// notSent: the target gave its turn up (Herald is stopping).
	notSent sendResult = iota
	// answered: the destination took the message or refused it for good;
	// either way it works.
	answered
	// failedTransient: a timeout, a connection error, a 5xx, a 429.
	failedTransient
)

// reasonBusy is the reason recorded for a target turned away by a busy
// destination.
const reasonBusy = "destination busy"

// reasonCircuitOpen is the reason recorded for a target turned away by a
// failing destination.
const reasonCircuitOpen = "destination failing; circuit open"

// refusal says why a target may not send now, and when to try again;
// busy: the destination works, but its turn is far.
type refusal struct {
	reason string
	wait   time.Duration
	busy   bool
}

// minSweep is the number of destination entries from which idle ones are
// swept.
const minSweep = 1024

func newDestinations(perDest int, maxWait time.Duration, cfg BreakerConfig, now func() time.Time) *destinations {
	return &destinations{perDest: perDest, maxWait: maxWait, cfg: cfg, now: now, state: map[string]*destination{}, sweepAt: minSweep}
}

// destinationKey groups endpoints by where their sends go: the host of URL
// endpoints, each Slack channel and incoming webhook on its own (Slack
// paces each one separately), the channel's provider otherwise.
func destinationKey(channel, target string) string {
	if channel == channels.Slack {
		return channel + "|" + strings.TrimSpace(target)
	}
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

// acquire asks for a slot of t's destination (t.key). It grants one at
// once (granted), queues t until a send ends (neither granted nor
// refused: [destinations.release] hands t its slot later), or refuses t:
// when the circuit is open (with how long until it half-opens), or when
// t's turn is further away than maxWait, judged from the sends ahead and
// the destination's average send.
func (ds *destinations) acquire(t *task) (granted bool, refused *refusal) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	now := ds.now()
	d := ds.state[t.key]
	if d == nil {
		if len(ds.state) >= ds.sweepAt {
			ds.sweep(now)
		}
		d = &destination{limit: min(initialLimit, ds.perDest), cooldown: ds.cfg.Cooldown}
		ds.state[t.key] = d
	} else if d.inflight == 0 && d.openedAt.IsZero() && now.Sub(d.lastUsed) > ds.cfg.MaxCooldown {
		d.failures = 0 // failures that old are not consecutive with this send
	}
	d.lastUsed = now
	t.probe = false
	if ds.cfg.Threshold > 0 && !d.openedAt.IsZero() {
		reopen := d.openedAt.Add(d.cooldown)
		if now.Before(reopen) || d.probing {
			w := reopen.Sub(now)
			if w <= 0 {
				w = d.cooldown / 4 // a probe is already under way
			}
			return false, &refusal{reasonCircuitOpen, w, false}
		}
		// Half-open: this send is the probe.
		t.probe, d.probing = true, true
		d.inflight++
		return true, nil
	}
	if d.inflight < d.limit && len(d.queue) == 0 {
		d.inflight++
		return true, nil
	}
	if ahead := len(d.queue) + d.inflight - d.limit + 1; ds.maxWait > 0 && d.avgSend > 0 {
		// Every slot is taken: about one average send per round of the
		// sends ahead, at the full bound the destination reaches as it
		// answers (a bound still growing would turn targets away that
		// it serves in time; one that hangs is caught by expired).
		wait := time.Duration((ahead+ds.perDest-1)/ds.perDest) * d.avgSend
		if wait > ds.maxWait {
			return false, ds.busy(d, now, wait)
		}
	}
	t.queuedAt = now
	d.queue = append(d.queue, t)
	return false, nil
}

// release ends a send of key, with what became of it and how long it held
// its slot. It returns the queued targets that now hold a slot (the one
// freed, and more when the bound grew), and the queued targets turned away
// because the circuit opened, with their refusal.
func (ds *destinations) release(key string, probe bool, res sendResult, held time.Duration) (started, turnedAway []*task, refused refusal) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	d := ds.state[key]
	if d == nil {
		return nil, nil, refusal{}
	}
	now := ds.now()
	switch {
	case res == notSent:
		if probe {
			d.probing = false // the probe never ran: let another try
		}
	case res == failedTransient:
		d.limit = max(1, d.limit/2)
		if ds.cfg.Threshold > 0 {
			d.failures++
			switch {
			case probe: // the probe failed: open again, longer
				d.probing = false
				d.openedAt = now
				d.cooldown = min(d.cooldown*2, ds.cfg.MaxCooldown)
			case d.openedAt.IsZero() && d.failures >= ds.cfg.Threshold:
				d.openedAt = now
			}
		}
	case res == answered:
		// The destination works, whichever send says so.
		d.failures, d.probing, d.openedAt, d.cooldown = 0, false, time.Time{}, ds.cfg.Cooldown
		d.limit = min(d.limit+1, ds.perDest)
	}
	if res != notSent {
		if d.avgSend == 0 {
			d.avgSend = held
		} else {
			d.avgSend += (held - d.avgSend) / 8
		}
	}
	d.inflight--
	if !d.openedAt.IsZero() {
		// The circuit is open: nobody queued may send now.
		turnedAway, d.queue = d.queue, nil
		return nil, turnedAway, refusal{reasonCircuitOpen, max(d.openedAt.Add(d.cooldown).Sub(now), time.Second), false}
	}
	for len(d.queue) > 0 && d.inflight < d.limit {
		started = append(started, d.queue[0])
		d.queue[0] = nil
		d.queue = d.queue[1:]
		d.inflight++
	}
	if d.avgSend == 0 && d.idle(now) {
		delete(ds.state, key)
	}
	return started, nil, refusal{}
}

// expired takes out of the queues the targets that waited longer than
// maxWait for a slot (the sends ahead of them hang), each with its
// refusal.
func (ds *destinations) expired() (out []*task, refused []refusal) {
	if ds.maxWait <= 0 {
		return nil, nil
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	now := ds.now()
	for _, d := range ds.state {
		n := 0
		for n < len(d.queue) && now.Sub(d.queue[n].queuedAt) > ds.maxWait {
			out = append(out, d.queue[n])
			refused = append(refused, *ds.busy(d, now, max(d.avgSend, ds.maxWait)))
			d.queue[n] = nil
			n++
		}
		d.queue = d.queue[n:]
	}
	return out, refused
}

// drain takes every queued target out (Herald is stopping).
func (ds *destinations) drain() []*task {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var out []*task
	for _, d := range ds.state {
		out = append(out, d.queue...)
		d.queue = nil
	}
	return out
}

// busy returns the refusal of a target whose turn at d is about wait away.
// The targets turned away come back one turn apart, after those turned
// away before them, so that each comes back about once. ds.mu is held.
func (ds *destinations) busy(d *destination, now time.Time, wait time.Duration) *refusal {
	at := now.Add(wait)
	if d.returns.After(at) {
		at = d.returns
	}
	d.returns = at.Add(max(d.avgSend/time.Duration(ds.perDest), time.Millisecond))
	return &refusal{reasonBusy, at.Sub(now), true}
}

// idle reports whether nothing about d is worth keeping at now: no target
// holds or awaits a slot, the breaker is closed, and the turns given out to
// targets turned away are past.
func (d *destination) idle(now time.Time) bool {
	return d.inflight == 0 && len(d.queue) == 0 && d.failures == 0 && d.openedAt.IsZero() && !d.returns.After(now)
}

// sweep drops the idle entries, and those unused for longer than the
// breaker's longest cooldown (their failures are stale), and sets the next
// sweep at twice the entries left.
func (ds *destinations) sweep(now time.Time) {
	for k, d := range ds.state {
		if d.idle(now) || (d.inflight == 0 && len(d.queue) == 0 && now.Sub(d.lastUsed) > ds.cfg.MaxCooldown) {
			delete(ds.state, k)
		}
	}
	ds.sweepAt = max(minSweep, 2*len(ds.state))
}
