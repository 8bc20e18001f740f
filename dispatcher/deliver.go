package dispatcher

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
)

// deliverer is one channel's delivery loop. It pulls jobs (batches from the
// fan-out, single parked jobs and notices), splits each into its targets,
// and runs every target through the stages of stages.go on a bounded pool
// of workers; the job is acknowledged once each of its targets is over and
// their records, parked copies and dead letters are stored (commit.go).
type deliverer struct {
	d       *Dispatcher
	name    string
	cfg     ChannelConfig
	ch      channels.Channel
	policy  RetryPolicy
	rate    *globalRate // nil: no rate limit
	dests   *destinations
	metrics *channelMetrics
	logger  *slog.Logger
	// pub stores parked copies and dead letters asynchronously.
	pub     jetstream.JetStream
	workers *workers
	commits chan *inHand

	// stopping is set, and stopped closed, when Herald begins to stop:
	// targets not yet sending are handed back. sendCtx carries the sends
	// and is cancelled when the shutdown timeout is over.
	stopping atomic.Bool
	stopped  chan struct{}
	sendCtx  context.Context
	// held counts the jobs in hand; their commits end it.
	held sync.WaitGroup
	// timed holds the targets waiting on a timer (a pace, a retry of
	// Herald's infrastructure), to hand them back at once on a stop.
	timedMu sync.Mutex
	timed   map[*task]*time.Timer
	// gated holds the targets waiting for writes to flow again (see
	// Dispatcher.writesStalled), under timedMu.
	gated []*task
	// warned throttles the warnings about infrastructure trouble.
	warned atomic.Int64
}

// workerIdle is how long a delivery goroutine waits for another target
// before it exits (after a burst, the goroutines and their stacks go away).
const workerIdle = 10 * time.Second

func newDeliverer(d *Dispatcher, name string, ch channels.Channel) (*deliverer, error) {
	cfg := d.cfg.Channels[name]
	b := cfg.Retry
	if b.Rand == nil {
		b.Rand = d.cfg.Rand
	}
	var policy RetryPolicy = b
	if d.retry != nil {
		policy = d.retry
	}
	pub, err := jetstream.New(d.nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(logAckTimeout))
	if err != nil {
		return nil, err
	}
	dl := &deliverer{
		d: d, name: name, cfg: cfg, ch: ch, policy: policy,
		dests:   newDestinations(cfg.PerDestination, cfg.MaxDestinationWait, cfg.Breaker, d.cfg.Now),
		metrics: d.metrics.forChannel(name),
		logger:  d.logger.With("channel", name),
		pub:     pub,
		commits: make(chan *inHand, 1024),
		timed:   map[*task]*time.Timer{},
		stopped: make(chan struct{}),
	}
	if cfg.Rate > 0 {
		dl.rate = newGlobalRate(d.pacer, name, cfg.Rate, cfg.Burst)
	}
	dl.workers = newWorkers(cfg.Concurrency, workerIdle, dl.runTask)
	d.onWritesFlow(dl.releaseGated)
	return dl, nil
}

// committers is the number of goroutines per channel that wait for the
// writes of finished jobs and acknowledge them.
const committers = 4

// run pulls jobs until ctx ends. On stop it stops pulling, hands back the
// targets not yet sending, lets the sends in flight finish (up to the
// shutdown timeout; then they are cancelled and their targets handed back)
// and commits every job in hand.
func (dl *deliverer) run(ctx context.Context) error {
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	dl.sendCtx = sendCtx
	// commitCtx ends the retries of writes when even the shutdown's grace
	// is over: their jobs are then left unacknowledged.
	commitCtx, abortCommits := context.WithCancel(context.WithoutCancel(ctx))
	defer abortCommits()
	var commitsDone sync.WaitGroup
	for range committers {
		commitsDone.Go(func() {
			for m := range dl.commits {
				dl.commit(commitCtx, m)
			}
		})
	}
	defer func() {
		close(dl.commits)
		commitsDone.Wait()
	}()
	// Parked jobs that came due are bounded by the concurrency: each is
	// one target.
	parkedSlots := make(chan struct{}, dl.cfg.Concurrency)
	// Jobs are pushed to a handler (not pulled through a channel, which
	// drops messages when the process is starved of CPU for a moment:
	// "slow consumer", and the job comes back only after its ack wait). A
	// short expiry keeps the pull requests fresh: a request lost under
	// heavy load ("no heartbeat received") is renewed within 2 s.
	var ccs []jetstream.ConsumeContext
	for _, c := range []struct {
		name   string
		batch  int
		expiry time.Duration
		slots  chan struct{}
	}{
		{deliveryConsumer(dl.name), dl.cfg.MaxAckPending, pullExpiry, nil},
		// Parked jobs are single targets, mostly idle: longer pull
		// requests, less chatter (a lost one delays retries by at most
		// this).
		{parkedConsumer(dl.name), max(1, min(dl.cfg.Concurrency, 1024)), parkedPullExpiry, parkedSlots},
	} {
		cons, err := dl.d.topo.Deliveries.Consumer(ctx, c.name)
		if err == nil {
			var cc jetstream.ConsumeContext
			cc, err = cons.Consume(func(msg jetstream.Msg) { dl.take(ctx, msg, c.slots) },
				jetstream.PullMaxMessages(c.batch), jetstream.PullExpiry(c.expiry),
				jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { dl.pullTrouble(c.name, err) }))
			if err == nil {
				ccs = append(ccs, cc)
			}
		}
		if err != nil {
			for _, cc := range ccs {
				cc.Stop()
			}
			if ctx.Err() != nil {
				return nil // stopped while starting
			}
			return fmt.Errorf("%s consumer: %w", dl.name, err)
		}
	}
	sweepDone := make(chan struct{})
	go dl.sweep(ctx, sweepDone)
	<-ctx.Done()
	// Drain: the jobs already buffered still reach the handler, which
	// hands them back at once.
	for _, cc := range ccs {
		cc.Drain()
	}
	for _, cc := range ccs {
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
		}
	}
	<-sweepDone
	dl.stop()

	done := make(chan struct{})
	go func() { dl.held.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(dl.d.cfg.ShutdownTimeout):
		dl.logger.Warn("shutdown timeout: cancelling sends in flight; their targets will be sent by another process or the next start")
		cancelSends()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			abortCommits()
			<-done
		}
	}
	return nil
}

// take takes a job pushed by a consumer in hand. With slots, it first
// takes one, which the job's commit gives back; when Herald stops while
// it waits for one, the job is handed back.
func (dl *deliverer) take(ctx context.Context, msg jetstream.Msg, slots chan struct{}) {
	if slots != nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			_ = msg.NakWithDelay(handBackDelay)
			return
		}
	}
	dl.receive(msg, slots)
}

// pullTrouble logs trouble of a consumer's pull requests (the library
// renews them itself), at most every few seconds per channel.
func (dl *deliverer) pullTrouble(consumer string, err error) {
	now := dl.d.cfg.Now().UnixNano()
	if last := dl.warned.Load(); now-last > int64(5*time.Second) && dl.warned.CompareAndSwap(last, now) {
		dl.logger.Warn("pulling jobs", "consumer", consumer, "err", err)
	}
}

// sweep turns away, every second, the targets that waited too long in a
// destination's queue, until ctx ends.
func (dl *deliverer) sweep(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	if dl.cfg.MaxDestinationWait <= 0 {
		<-ctx.Done()
		return
	}
	tick := time.NewTicker(min(time.Second, dl.cfg.MaxDestinationWait/4))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			out, refused := dl.dests.expired()
			for i, t := range out {
				t.refusal, t.next = refused[i], (*task).turnedAway
				dl.workers.push(t)
			}
		}
	}
}

// stop hands back every target that is not sending: those queued at their
// destination and those waiting on a timer. Targets still in the workers'
// queue hand themselves back when they run.
func (dl *deliverer) stop() {
	dl.timedMu.Lock()
	dl.stopping.Store(true)
	close(dl.stopped)
	dl.timedMu.Unlock()
	for _, t := range dl.dests.drain() {
		t.handBack()
	}
	dl.timedMu.Lock()
	timed := dl.timed
	dl.timed = map[*task]*time.Timer{}
	dl.timedMu.Unlock()
	for t, timer := range timed {
		if timer.Stop() {
			t.handBack()
		}
	}
	dl.releaseGated() // each finds Herald stopping and is handed back
}

// gate holds t until writes flow again, and reports false when they
// already do.
func (dl *deliverer) gate(t *task) bool {
	dl.timedMu.Lock()
	defer dl.timedMu.Unlock()
	if !dl.d.writesStalled() || dl.stopping.Load() {
		return false
	}
	dl.gated = append(dl.gated, t)
	return true
}

// releaseGated runs again the targets held by the gate.
func (dl *deliverer) releaseGated() {
	dl.timedMu.Lock()
	ts := dl.gated
	dl.gated = nil
	dl.timedMu.Unlock()
	for _, t := range ts {
		dl.workers.push(t)
	}
}

// after runs t again after wait, unless Herald stops first (t is then
// handed back).
func (dl *deliverer) after(t *task, wait time.Duration) {
	dl.timedMu.Lock()
	defer dl.timedMu.Unlock()
	if dl.stopping.Load() {
		go t.handBack()
		return
	}
	dl.timed[t] = time.AfterFunc(wait, func() {
		dl.timedMu.Lock()
		_, ok := dl.timed[t]
		delete(dl.timed, t)
		dl.timedMu.Unlock()
		if !ok { // a stop took it away as the timer fired
			t.handBack()
			return
		}
		dl.workers.push(t)
	})
}

// pullExpiry is how long a pull request of the delivery and fan-out loops
// lives (see deliverer.run). Measured on the webhook benchmark: with 5 s,
// about one run in six stalled 5 s; with 2 s, none in twelve.
const pullExpiry = 2 * time.Second

// parkedPullExpiry is how long a pull request of the parked jobs' loop
// lives.
const parkedPullExpiry = 10 * time.Second

// inHand is a job pulled from the stream and not yet acknowledged.
type inHand struct {
	dl  *deliverer
	msg jetstream.Msg
	job *Job
	// seq is the job's stream sequence; parked whether it is a parked
	// copy, whose headers count the attempts made before (attempts).
	seq      uint64
	parked   bool
	attempts int
	replay   bool
	// redelivered: JetStream delivered the job before, to a process that
	// neither acknowledged it nor gave it back in time (it died, or lost
	// JetStream for a while and may still be storing its records).
	redelivered bool
	// seen: a copy of this job may have been handled before (redelivered,
	// parked, replayed, re-published by a resumed fan-out, or old enough
	// for such a copy to exist). Its targets take a lease and read the
	// delivery log before anything else.
	seen bool
	// slots is given a slot back when the job is committed (parked jobs).
	slots         chan struct{}
	stopKeepAlive func()

	mu      sync.Mutex
	pending int
	// back is set when a target was handed back: the job is then returned
	// to the stream for another process or the next start (its targets
	// that were done find their records).
	back   bool
	writes []write
	leases []lease
}

// receive takes a job in hand and starts its targets.
func (dl *deliverer) receive(msg jetstream.Msg, slots chan struct{}) {
	m := &inHand{dl: dl, msg: msg, slots: slots}
	md, err := msg.Metadata()
	if err != nil {
		dl.logger.Error("job without metadata", "err", err)
		_ = msg.Term()
		m.release()
		return
	}
	if dl.stopping.Load() {
		_ = msg.NakWithDelay(handBackDelay) // not started
		m.release()
		return
	}
	h := msg.Headers()
	m.seq = md.Sequence.Stream
	m.replay = h.Get(hdrReplay) != ""
	m.parked = strings.HasPrefix(msg.Subject(), subjParked)
	m.attempts, _ = strconv.Atoi(h.Get(hdrAttempt))
	m.redelivered = md.NumDelivered > 1
	now := dl.d.cfg.Now()
	if m.parked {
		if due, _ := strconv.ParseInt(h.Get(hdrDue), 10, 64); time.UnixMilli(due).After(now) {
			_ = msg.NakWithDelay(time.UnixMilli(due).Sub(now)) // not due yet
			m.release()
			return
		}
	}
	// A copy of a job can exist only once the duplicate window of the
	// first one is over (a fan-out resumed past it); a job younger than
	// half of it, delivered for the first time, meets none while its
	// targets are handled (see leases).
	m.seen = m.parked || m.replay || md.NumDelivered > 1 || h.Get(hdrRecheck) != "" ||
		now.Sub(md.Timestamp) >= dl.d.cfg.DuplicateWindow/2
	m.job, err = decodeJob(msg.Data())
	if err != nil {
		dl.buryBadJob(m, "invalid job: "+err.Error())
		return
	}
	if m.job.Channel != dl.name {
		dl.buryBadJob(m, fmt.Sprintf("invalid job: channel %q on the %s subject", m.job.Channel, dl.name))
		return
	}
	dl.held.Add(1)
	// Slow targets keep the job in hand, and its leases alive.
	m.stopKeepAlive = keepAlive(msg, dl.cfg.AckWait/3, func() { dl.renewLeases(m) })
	targets := m.job.targets()
	m.pending = len(targets)
	dl.start(m, targets)
}

// start runs a job's targets. Those of a batch first have their
// subscribers read in one request when the decoded-subscriber cache lacks
// them (audiences larger than the cache): one round trip to JetStream per
// job instead of one per target. Measured on BenchmarkWebhookThroughput
// (50 000 subscribers): reading them one by one took a fifth of Herald's
// CPU. A failed read only costs the targets their own reads.
func (dl *deliverer) start(m *inHand, targets []Target) {
	var want map[string]uint64
	if m.job.To == nil && len(targets) > 1 {
		for _, tg := range targets {
			if rev, ok := dl.d.index.Revision(tg.SubscriberID); ok && !dl.d.store.Holds(tg.SubscriberID, rev) {
				if want == nil {
					want = make(map[string]uint64, len(targets))
				}
				want[tg.SubscriberID] = rev
			}
		}
	}
	push := func() {
		for _, tg := range targets {
			dl.workers.push(newTask(m, tg))
		}
	}
	if len(want) < 2 {
		push()
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(dl.sendCtx, prefetchTimeout)
		err := dl.d.store.Prefetch(ctx, dl.d.js, want)
		cancel()
		if err != nil {
			dl.logger.Debug("reading a batch's subscribers at once", "err", err)
		}
		push()
	}()
}

// prefetchTimeout bounds the read of a batch's subscribers.
const prefetchTimeout = 5 * time.Second

// release gives back the job's slot, if it holds one.
func (m *inHand) release() {
	if m.slots != nil {
		<-m.slots
		m.slots = nil
	}
}

// buryBadJob dead-letters a job that cannot even be read, and terminates
// it; when the dead letter cannot be stored, the job comes back later.
func (dl *deliverer) buryBadJob(m *inHand, reason string) {
	defer m.release()
	dl.logger.Warn("bad job dead-lettered", "reason", reason)
	ctx, cancel := context.WithTimeout(context.Background(), logAckTimeout)
	defer cancel()
	if err := dl.d.dlq.add(ctx, m.msg.Subject(), m.msg.Data(), m.msg.Headers().Get(hdrMsgID), reason, 0); err != nil {
		dl.d.health.fail(componentDeadLetters, err)
		dl.logger.Error("cannot dead-letter a bad job; it will come back", "err", err)
		_ = m.msg.NakWithDelay(transientDelay(2))
		return
	}
	_ = m.msg.TermWithReason("bad job")
}

// write is an asynchronous publish a job waits for before its ack: a
// record, a parked copy, a dead letter.
type write struct {
	fut jetstream.PubAckFuture
	msg *nats.Msg
	// record: a delivery-log record (counted as lost when it cannot be
	// stored before Herald stops).
	record bool
}

// add registers a write of the job.
func (m *inHand) add(w write) {
	m.mu.Lock()
	m.writes = append(m.writes, w)
	m.mu.Unlock()
}

// hold registers a lease to give back once the job's writes are stored.
func (m *inHand) hold(ls lease) {
	m.mu.Lock()
	m.leases = append(m.leases, ls)
	m.mu.Unlock()
}

// finished counts one more target over; the last one sends the job to be
// committed.
func (m *inHand) finished(back bool) {
	m.mu.Lock()
	m.back = m.back || back
	m.pending--
	last := m.pending == 0
	m.mu.Unlock()
	if last {
		m.dl.commits <- m
	}
}

// handBackDelay is how long a job handed back waits before it is delivered
// again: longer than this process's pull requests, so that the server does
// not hand it straight back to the process that is stopping.
const handBackDelay = pullExpiry + time.Second

// infraTrouble records a failure of Herald's own infrastructure and logs
// it, at most every few seconds per channel.
func (dl *deliverer) infraTrouble(component string, err error) {
	dl.d.health.fail(component, err)
	now := dl.d.cfg.Now().UnixNano()
	if last := dl.warned.Load(); now-last > int64(5*time.Second) && dl.warned.CompareAndSwap(last, now) {
		dl.logger.Warn("Herald's infrastructure is failing; the work waits and tries again without using an attempt", "component", component, "err", err)
	}
}
