package dispatcher

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/channels"
)

// destinations keeps, per destination (a webhook host, a Slack channel or
// incoming webhook, a provider), a bound on sends in flight, an optional
// pace between sends, and a circuit breaker, so that one slow, busy or dead
// destination cannot hold every worker of its channel: a job whose turn is
// further away than maxWait is handed back (deferred) instead of waiting
// in the process.
type destinations struct {
	perDest int
	// pace is the least time between the starts of two sends to one
	// destination (0: none); maxWait the longest a job waits for its
	// destination's turn in the process (0: no bound).
	pace    time.Duration
	maxWait time.Duration
	cfg     BreakerConfig
	now     func() time.Time

	mu    sync.Mutex
	state map[string]*destination
	// sweepAt is the number of entries above which idle ones kept for
	// their pace are dropped.
	sweepAt int
}

type destination struct {
	slots    chan struct{}
	users    int // goroutines holding, waiting for a slot or for their turn; the entry is dropped at 0
	failures int
	openedAt time.Time
	cooldown time.Duration
	probing  bool
	// next is the earliest start of the next send, with a pace.
	next time.Time
	// avgSend is a moving average of how long a send holds its slot (the
	// channel's concurrency and rate limits included): with every slot
	// taken, a job's wait is about avgSend per round of the sends ahead of
	// it.
	avgSend time.Duration
	// returns is when the next job turned away (busy) should come back.
	returns time.Time
	// lastUsed is when a job last asked for a turn.
	lastUsed time.Time
}

// turn is the time the destination takes per job: its pace, or an average
// send shared by its slots (at least a millisecond).
func (ds *destinations) turn(d *destination) time.Duration {
	return max(ds.pace, d.avgSend/time.Duration(ds.perDest), time.Millisecond)
}

// sendResult is what became of a send, for the breaker.
type sendResult int

const (
	// notSent: the job gave its turn up (Herald is stopping).
	notSent sendResult = iota
	// answered: the destination took the message or refused it for good;
	// either way it works.
	answered
	// failedTransient: a timeout, a connection error, a 5xx, a 429.
	failedTransient
)

// reasonBusy is the reason recorded for a job turned away by a busy
// destination.
const reasonBusy = "destination busy"

// refusal says why a job may not send now, and when to try again; busy:
// the destination works, but its turn is far.
type refusal struct {
	reason string
	wait   time.Duration
	busy   bool
}

// minSweep is the number of destination entries from which idle ones kept
// for their pace are swept.
const minSweep = 1024

func newDestinations(perDest int, pace, maxWait time.Duration, cfg BreakerConfig, now func() time.Time) *destinations {
	return &destinations{perDest: perDest, pace: pace, maxWait: maxWait, cfg: cfg, now: now, state: map[string]*destination{}, sweepAt: minSweep}
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

// acquire waits for key's turn: its pace, then a free slot. It returns a
// refusal instead when the circuit is open (with how long until it
// half-opens) or when the turn is further away than maxWait (with about
// how far): judged beforehand from the pace and the destination's average
// send, and in any case once the job has waited maxWait for a slot (a
// destination whose sends hang). release must be called once with what
// became of the send and how long it held the slot.
func (ds *destinations) acquire(ctx context.Context, key string) (release func(res sendResult, held time.Duration), refused refusal, err error) {
	ds.mu.Lock()
	now := ds.now()
	d := ds.state[key]
	if d == nil {
		if len(ds.state) >= ds.sweepAt {
			ds.sweep(now)
		}
		d = &destination{slots: make(chan struct{}, ds.perDest), cooldown: ds.cfg.Cooldown}
		ds.state[key] = d
	} else if d.users == 0 && d.openedAt.IsZero() && now.Sub(d.lastUsed) > ds.cfg.MaxCooldown {
		d.failures = 0 // failures that old are not consecutive with this send
	}
	d.lastUsed = now
	probe := false
	if ds.cfg.Threshold > 0 && !d.openedAt.IsZero() {
		reopen := d.openedAt.Add(d.cooldown)
		if now.Before(reopen) || d.probing {
			ds.mu.Unlock()
			if w := reopen.Sub(now); w > 0 {
				return nil, refusal{"destination failing; circuit open", w, false}, nil
			}
			return nil, refusal{"destination failing; circuit open", d.cooldown / 4, false}, nil // a probe is already under way
		}
		probe = true // half-open: this send is the probe
	}
	start := now
	if ds.pace > 0 && d.next.After(now) {
		start = d.next
	}
	wait := start.Sub(now)
	if ahead := d.users - ds.perDest + 1; ahead > 0 && d.avgSend > 0 {
		// Every slot is taken: about one average send per round of
		// perDest sends ahead.
		wait = max(wait, time.Duration((ahead+ds.perDest-1)/ds.perDest)*d.avgSend)
	}
	if ds.maxWait > 0 && wait > ds.maxWait {
		r := ds.busy(d, now, wait)
		ds.mu.Unlock()
		return nil, r, nil
	}
	if ds.pace > 0 {
		d.next = start.Add(ds.pace)
	}
	if probe {
		d.probing = true
	}
	d.users++
	ds.mu.Unlock()

	if start.After(now) {
		t := time.NewTimer(start.Sub(now))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			ds.done(key, d, notSent, 0, probe)
			return nil, refusal{}, ctx.Err()
		}
	}
	select {
	case d.slots <- struct{}{}: // a free slot: no timer
	default:
		var expired <-chan time.Time
		if ds.maxWait > 0 {
			t := time.NewTimer(ds.maxWait)
			defer t.Stop()
			expired = t.C
		}
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			ds.done(key, d, notSent, 0, probe)
			return nil, refusal{}, ctx.Err()
		case <-expired:
			// The sends ahead did not end in time (a destination whose
			// sends hang, before its average knows it).
			ds.done(key, d, notSent, 0, probe)
			ds.mu.Lock()
			r := ds.busy(d, ds.now(), max(d.avgSend, ds.maxWait))
			ds.mu.Unlock()
			return nil, r, nil
		}
	}
	var once sync.Once
	return func(res sendResult, held time.Duration) {
		once.Do(func() {
			<-d.slots
			ds.done(key, d, res, held, probe)
		})
	}, refusal{}, nil
}

// busy returns the refusal of a job whose turn at d is about wait away.
// The jobs turned away come back one turn apart, after those turned away
// before them, so that each comes back about once. ds.mu is held.
func (ds *destinations) busy(d *destination, now time.Time, wait time.Duration) refusal {
	at := now.Add(wait)
	if d.returns.After(at) {
		at = d.returns
	}
	d.returns = at.Add(ds.turn(d))
	return refusal{reasonBusy, at.Sub(now), true}
}

// done updates the breaker and the average send duration with a send's
// result; probe tells the half-open probe from the other sends (one that
// began before the circuit opened may end during the probe). It forgets
// idle destinations that learnt nothing worth keeping.
func (ds *destinations) done(key string, d *destination, res sendResult, held time.Duration, probe bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	d.users--
	now := ds.now()
	switch {
	case res == notSent:
		if probe {
			d.probing = false // the probe never ran: let another try
		}
	case ds.cfg.Threshold > 0 && res == failedTransient:
		d.failures++
		switch {
		case probe: // the probe failed: open again, longer
			d.probing = false
			d.openedAt = now
			d.cooldown = min(d.cooldown*2, ds.cfg.MaxCooldown)
		case d.openedAt.IsZero() && d.failures >= ds.cfg.Threshold:
			d.openedAt = now
		}
	case res == answered:
		// The destination works, whichever send says so.
		d.failures, d.probing, d.openedAt, d.cooldown = 0, false, time.Time{}, ds.cfg.Cooldown
	}
	if res != notSent {
		if d.avgSend == 0 {
			d.avgSend = held
		} else {
			d.avgSend += (held - d.avgSend) / 8
		}
	}
	// An entry that knows the destination's pace of sends is kept until a
	// sweep: the next burst to it is judged from the start.
	if d.avgSend == 0 && d.idle(now) {
		delete(ds.state, key)
	}
}

// idle reports whether nothing about d is worth keeping at now: no job
// holds or awaits a turn, the breaker is closed, and the turns given out
// (to sends and to jobs turned away) are past.
func (d *destination) idle(now time.Time) bool {
	return d.users == 0 && d.failures == 0 && d.openedAt.IsZero() && !d.next.After(now) && !d.returns.After(now)
}

// sweep drops the idle entries, and those unused for longer than the
// breaker's longest cooldown (their failures are stale), and sets the next
// sweep at twice the entries left.
func (ds *destinations) sweep(now time.Time) {
	for k, d := range ds.state {
		if d.idle(now) || (d.users == 0 && now.Sub(d.lastUsed) > ds.cfg.MaxCooldown) {
			delete(ds.state, k)
		}
	}
	ds.sweepAt = max(minSweep, 2*len(ds.state))
}
