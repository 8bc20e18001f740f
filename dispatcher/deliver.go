package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// deliverer is one channel's delivery loop.
type deliverer struct {
	d       *Dispatcher
	name    string
	cfg     ChannelConfig
	ch      channels.Channel
	policy  RetryPolicy
	limiter *rate.Limiter
	sem     chan struct{}
	dests   *destinations
	metrics *channelMetrics
	logger  *slog.Logger
	wg      sync.WaitGroup
	// workers counts the delivery goroutines; idleExit is how long an idle
	// one lives (workerIdle).
	workers  atomic.Int32
	idleExit time.Duration
	// claimed holds the ids of the jobs seen before (redelivered, parked)
	// now in hand.
	claimMu sync.Mutex
	claimed map[string]struct{}
}

func newDeliverer(d *Dispatcher, name string, ch channels.Channel) *deliverer {
	cfg := d.cfg.Channels[name]
	b := cfg.Retry
	if b.Rand == nil {
		b.Rand = d.cfg.Rand
	}
	var policy RetryPolicy = b
	if d.retry != nil {
		policy = d.retry
	}
	lim := rate.NewLimiter(rate.Inf, 1)
	if cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst)
	}
	return &deliverer{
		d: d, name: name, cfg: cfg, ch: ch, policy: policy, limiter: lim,
		sem:      make(chan struct{}, cfg.Concurrency),
		dests:    newDestinations(cfg.PerDestination, cfg.Pace, cfg.MaxDestinationWait, cfg.Breaker, d.cfg.Now),
		metrics:  d.metrics.forChannel(name),
		idleExit: workerIdle,
		logger:   d.logger.With("channel", name),
	}
}

// run pulls jobs until ctx ends, each handled in a goroutine of its own;
// the consumer's MaxAckPending bounds how many are held at once. On stop it
// stops pulling and waits for the jobs in hand, up to the shutdown timeout;
// sends still running then are cancelled and their jobs left for
// redelivery.
func (dl *deliverer) run(ctx context.Context) error {
	// A short expiry keeps the pull requests fresh: when the server and
	// the iterator disagree on what is still requested (seen under heavy
	// CPU load: "no heartbeat received", with either pull API), the
	// heartbeat check (twice the heartbeat, half the expiry) restarts the
	// flow within 2 s instead of stalling for the default 30 s.
	batch := jetstream.PullMaxMessages(min(2*dl.cfg.Concurrency, dl.cfg.MaxAckPending))
	var its []jetstream.MessagesContext
	defer func() {
		for _, it := range its {
			it.Stop()
		}
	}()
	for _, c := range []struct {
		name   string
		expiry time.Duration
	}{
		{deliveryConsumer(dl.name), pullExpiry},
		// Parked jobs are mostly idle: longer pull requests, less chatter
		// (a lost one delays retries by at most this).
		{parkedConsumer(dl.name), parkedPullExpiry},
	} {
		cons, err := dl.d.topo.Deliveries.Consumer(ctx, c.name)
		if err != nil {
			return fmt.Errorf("%s consumer: %w", dl.name, err)
		}
		it, err := cons.Messages(batch, jetstream.PullExpiry(c.expiry))
		if err != nil {
			return fmt.Errorf("%s consumer: %w", dl.name, err)
		}
		its = append(its, it)
	}
	// Sends get their own context: a stop first lets them finish.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	// Drain, not Stop: the jobs already buffered still come out of Next and
	// are handed back at once (Nak), instead of waiting out the ack wait.
	stop := context.AfterFunc(ctx, func() {
		for _, it := range its {
			it.Drain()
		}
	})
	defer stop()
	idle := make(chan inHand)
	// The jobs in hand from the delivery consumer are bounded by its
	// MaxAckPending; parked jobs that came due, by the same number.
	held := make(chan struct{}, dl.cfg.MaxAckPending)
	var pulls sync.WaitGroup
	pulls.Go(func() { dl.pull(ctx, sendCtx, its[0], idle, nil, "fetching jobs") })
	pulls.Go(func() { dl.pull(ctx, sendCtx, its[1], idle, held, "fetching parked jobs") })
	pulls.Wait()
	close(idle)
	done := make(chan struct{})
	go func() { dl.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(dl.d.cfg.ShutdownTimeout):
		dl.logger.Warn("shutdown timeout: cancelling sends in flight; their jobs will be redelivered")
		cancelSends()
		<-done
	}
	return nil
}

// inHand is a job handed to a delivery goroutine, with the slot it holds
// in held (nil: none).
type inHand struct {
	msg  jetstream.Msg
	held chan struct{}
}

// pull takes jobs from it until it is drained or stopped, each handled in
// a goroutine of its own. With held, it takes a slot of held before each
// job, which the job gives back when handled.
func (dl *deliverer) pull(ctx, sendCtx context.Context, it jetstream.MessagesContext, idle chan inHand, held chan struct{}, what string) {
	for {
		if held != nil {
			select {
			case held <- struct{}{}:
			case <-ctx.Done():
				held = nil // drain what is buffered: each is handed back
			}
		}
		msg, err := it.Next()
		if err != nil {
			if held != nil {
				<-held
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return
			}
			dl.logger.Warn(what, "err", err)
			continue
		}
		// Each job in hand has a goroutine of its own (one waiting for a
		// busy destination holds up no other); goroutines are reused, so
		// their stacks are grown once, not for every job.
		job := inHand{msg: msg, held: held}
		select {
		case idle <- job:
		default:
			dl.wg.Add(1)
			dl.workers.Add(1)
			go func() {
				defer dl.wg.Done()
				defer dl.workers.Add(-1)
				dl.work(sendCtx, ctx, job, idle)
			}()
		}
	}
}

// workerIdle is how long a delivery goroutine waits for another job before
// it exits (after a burst, the goroutines and their stacks go away).
const workerIdle = 10 * time.Second

// work handles msg, then the jobs handed to it through idle, until idle is
// closed or no job came for dl.idleExit.
func (dl *deliverer) work(ctx, waitCtx context.Context, job inHand, idle <-chan inHand) {
	timer := time.NewTimer(dl.idleExit)
	defer timer.Stop()
	for {
		dl.handle(ctx, waitCtx, job.msg)
		if job.held != nil {
			<-job.held
		}
		timer.Reset(dl.idleExit)
		var ok bool
		select {
		case job, ok = <-idle:
			if !ok {
				return
			}
		case <-timer.C:
			return
		}
	}
}

// attempt is the state of one job's handling.
type attempt struct {
	msg jetstream.Msg
	job *Job
	// number is the attempt's number (1: the first); seq the job's
	// stream sequence.
	number  int
	seq     uint64
	replay  bool
	rec     Record
	started time.Time
	// target is the endpoint's email address or phone number, kept out
	// of the delivery log's reasons.
	target string
	// base and logger: the attempt's logger is built on first use (most
	// attempts log nothing).
	base   *slog.Logger
	logger *slog.Logger
}

// log returns the attempt's logger, with the job's identity.
func (a *attempt) log() *slog.Logger {
	if a.logger == nil {
		a.logger = a.base
		if j := a.job; j != nil {
			a.logger = a.base.With("delivery", j.ID, "subscriber", j.SubscriberID, "endpoint", j.EndpointID, "attempt", a.number)
		}
	}
	return a.logger
}

// handle runs one job through its stages: decode, already-done check,
// endpoint resolution, skip checks, render, send, record.
//
// ctx carries the send and its records, and outlives a stop; waitCtx ends
// at the stop: a job still waiting for its turn then goes back to the
// stream (for this process's successor or another one) instead of being
// sent during the shutdown.
func (dl *deliverer) handle(ctx, waitCtx context.Context, msg jetstream.Msg) {
	stopProgress := keepAlive(msg, dl.cfg.AckWait/3)
	defer stopProgress()
	d := dl.d
	md, err := msg.Metadata()
	if err != nil {
		dl.logger.Error("job without metadata", "err", err)
		_ = msg.Term()
		return
	}
	a := &attempt{msg: msg, number: int(md.NumDelivered), seq: md.Sequence.Stream, started: d.cfg.Now(), base: dl.logger}
	h := msg.Headers()
	a.replay = h.Get(hdrReplay) != ""
	a.job, err = decodeJob(msg.Data())
	if err != nil {
		dl.deadLetter(ctx, a, "invalid job: "+err.Error())
		return
	}
	j := a.job
	parked := strings.HasPrefix(msg.Subject(), subjParked)
	if parked {
		// A parked job counts its attempts in its headers (it is
		// delivered on arrival, then when due).
		before, _ := strconv.Atoi(h.Get(hdrAttempt))
		a.number = before + 1
	}
	a.rec = Record{
		DeliveryID: j.ID, Kind: j.Kind, EventID: j.EventID, IncidentID: j.IncidentID, Sequence: j.Sequence,
		SubscriberID: j.SubscriberID, EndpointID: j.EndpointID, Channel: j.Channel, Attempt: a.number,
	}
	if deliveries := int(md.NumDelivered); deliveries > dl.deliveryLimit(parked) {
		// Delivered that often without an answer: the process handling
		// it died each time. Dead-lettered before it can do so again;
		// this delivery is no attempt.
		a.number--
		a.rec.Attempt, a.rec.Outcome, a.rec.Reason = a.number, DeadLettered, fmt.Sprintf("attempts exhausted (%d deliveries without an answer)", deliveries-1)
		dl.record(ctx, a)
		a.log().Warn("job dead-lettered", "reason", a.rec.Reason)
		dl.finalize(ctx, a, a.rec.Reason)
		return
	}
	if due, _ := strconv.ParseInt(h.Get(hdrDue), 10, 64); parked && time.UnixMilli(due).After(a.started) {
		_ = msg.NakWithDelay(time.UnixMilli(due).Sub(a.started)) // not due yet
		return
	}

	// Already done? Only a job seen before (redelivered, re-published
	// after a crash, replayed) can be, so only those pay the lookup.
	if a.number > 1 || parked || a.replay || h.Get(hdrRecheck) != "" {
		// Two copies of one job (a redelivery and a parked copy) are
		// never handled at once: the later one checks again in a while.
		if !dl.claim(j.ID) {
			dl.nakTransient(a)
			return
		}
		defer dl.unclaim(j.ID)
		done, last, err := d.log.done(ctx, j, a.replay)
		if err != nil {
			a.log().Warn("reading the delivery log", "err", err)
			dl.nakTransient(a)
			return
		}
		if done != nil {
			a.log().Debug("already done; job dropped", "outcome", done.Outcome)
			dl.metrics.duplicate.Inc()
			_ = msg.Ack()
			return
		}
		if wait, attempts, ok := waiting(last, a.started); ok && !a.replay {
			// Parked after its last attempt, and this copy came back
			// before the due time: its ack was lost after the parked copy
			// was stored (or the copy is a stale twin). Park it as it
			// was: the same copy (same Nats-Msg-Id) is dropped by the
			// stream; a missing one is stored.
			a.log().Debug("parked job back early; parked again", "until", last.NextAttemptAt)
			dl.park(ctx, a, wait, attempts)
			return
		}
	}

	var sub *subscribers.Subscriber
	var ep *subscribers.Endpoint
	if j.To != nil {
		sub, ep = j.directTarget() // a notice addressed directly
	} else {
		sub, ep, err = d.resolve(ctx, j)
	}
	if err != nil {
		a.log().Warn("resolving the endpoint", "err", err)
		dl.nakTransient(a)
		return
	}
	if ep != nil && (j.Channel == channels.Email || j.Channel == channels.SMS) {
		a.target = ep.Target() // an address: kept out of the log, checked against suppressions
	}
	switch {
	case ep == nil:
		dl.skip(ctx, a, Unsubscribed, "the subscriber or endpoint no longer exists")
		return
	case ep.Disabled != nil:
		dl.skip(ctx, a, Disabled, "endpoint disabled: "+ep.Disabled.Reason)
		return
	case a.target != "" && d.supp.Contains(j.Channel, a.target):
		dl.skip(ctx, a, Suppressed, "address suppressed")
		return
	case j.Kind == KindUpdate && *dl.cfg.LatestOnly && d.snaps.latestSeq(j.IncidentID) > j.Sequence:
		dl.skip(ctx, a, Superseded, fmt.Sprintf("superseded by update %d", d.snaps.latestSeq(j.IncidentID)))
		return
	}
	loc := d.location(sub.Timezone)
	if ep.QuietHours != nil && j.Kind == KindUpdate && j.Priority != incident.P1 {
		if quiet, end := ep.QuietHours.Window(d.cfg.Now(), loc); quiet {
			wait := end.Sub(d.cfg.Now()) + time.Duration(d.cfg.Rand()*float64(time.Minute))
			dl.defer_(ctx, a, "quiet hours", wait, true)
			return
		}
	}
	if dl.capSMS(ctx, a) {
		return
	}

	m, rendered, err := dl.render(ctx, j, sub, ep, loc, a.number)
	if err != nil {
		var missing *missingUpdateError
		if errors.As(err, &missing) {
			dl.fail(ctx, a, err, channels.Classification{Permanent: true})
			return
		}
		if ctx.Err() == nil && errors.Is(err, errTransientLoad) {
			a.log().Warn("loading the update", "err", err)
			dl.nakTransient(a)
			return
		}
		dl.fail(ctx, a, fmt.Errorf("render: %w", err), channels.Classification{Permanent: true})
		return
	}
	a.rec.Locale, a.rec.Requested, a.rec.Fallback = rendered.Locale, rendered.Requested, rendered.Fallback

	target := channels.Endpoint{SubscriberID: sub.ID, ID: ep.ID, Address: ep.Target(), Secret: ep.SigningSecret(d.cfg.Now()), Name: sub.Name}
	key := destinationKey(dl.name, target.Address)
	release, refused, err := dl.dests.acquire(waitCtx, key)
	if err != nil { // stopping
		dl.handBack(a)
		return
	}
	if release == nil {
		// Waiting for a busy destination is no attempt. For a failing one
		// it is, and the job also keeps to its own backoff: a destination
		// down for hours does not use up its jobs' attempts at the pace
		// of the breaker's cooldown.
		wait := refused.wait + time.Duration(d.cfg.Rand()*float64(refused.wait/2))
		if !refused.busy {
			wait = max(wait, dl.policy.Delay(a.number, 0))
		}
		dl.defer_(ctx, a, refused.reason, wait, !refused.busy)
		return
	}
	// How long the send holds its slot, the channel's own limits included,
	// paces the destination's queue.
	slotAt := d.cfg.Now()
	select {
	case dl.sem <- struct{}{}:
	case <-waitCtx.Done():
		release(notSent, 0)
		dl.handBack(a)
		return
	}
	if err := dl.limiter.Wait(waitCtx); err != nil || waitCtx.Err() != nil {
		<-dl.sem
		release(notSent, 0)
		dl.handBack(a)
		return
	}
	dl.metrics.inflight.Inc()
	sendCtx, cancel := context.WithTimeout(ctx, dl.cfg.SendTimeout)
	sendStart := d.cfg.Now()
	receipt, sendErr := dl.ch.Send(sendCtx, target, m)
	took := d.cfg.Now().Sub(sendStart)
	cancel()
	<-dl.sem
	dl.metrics.inflight.Dec()
	class := channels.Classify(sendErr)
	held := d.cfg.Now().Sub(slotAt)
	switch {
	case sendErr == nil || class.Permanent:
		release(answered, held)
	case errors.Is(sendErr, context.Canceled):
		release(notSent, 0)
	default:
		release(failedTransient, held)
	}

	if sendErr != nil && ctx.Err() != nil {
		// Herald is stopping: not the destination's fault, not an attempt.
		dl.handBack(a)
		return
	}
	dl.metrics.send.Observe(took.Seconds())
	if a.number == 1 && j.Kind == KindUpdate {
		if acc, ok := d.events.acceptedAt(j.StreamSeq); ok {
			dl.metrics.lag.Observe(d.cfg.Now().Sub(acc).Seconds())
		}
	}
	a.rec.DurationMS = float64(took.Microseconds()) / 1000
	if sendErr == nil {
		dl.delivered(ctx, a, receipt)
		return
	}
	dl.fail(ctx, a, sendErr, class)
}

// pullExpiry is how long a pull request of the delivery and fan-out loops
// lives (see deliverer.run). Measured on the webhook benchmark: with 5 s,
// about one run in six stalled 5 s; with 2 s, none in twelve.
const pullExpiry = 2 * time.Second

// parkedPullExpiry is how long a pull request of the parked jobs' loop
// lives.
const parkedPullExpiry = 10 * time.Second

// handBack returns a job that had not started sending when Herald began to
// stop, for another process or the next start to send. The delay outlasts
// this process's pull requests, so that the server does not hand the job
// straight back to the process that is stopping (where it would wait out
// the ack wait).
func (dl *deliverer) handBack(a *attempt) {
	if err := a.msg.NakWithDelay(pullExpiry + time.Second); err != nil {
		a.log().Warn("stopping: handing the job back failed; it returns after the ack wait", "err", err)
		return
	}
	a.log().Debug("stopping: job handed back")
}

// render loads the update (or notice) and renders it for the endpoint.
func (dl *deliverer) render(ctx context.Context, j *Job, sub *subscribers.Subscriber, ep *subscribers.Endpoint, loc *time.Location, number int) (*channels.Message, *templates.Rendered, error) {
	d := dl.d
	rc := templates.Recipient{Locale: sub.Locale, Location: loc, Name: sub.Name}
	if j.To == nil && (j.Channel == channels.Email || j.Channel == channels.Slack) {
		rc.UnsubscribeURL = d.links.UnsubscribeURL(sub.ID, ep.ID, ep.Target())
		rc.PreferencesURL = d.links.PreferencesURL(sub.ID, ep.ID, ep.Target())
	}
	m := &channels.Message{ID: j.ID, Kind: j.Kind, Attempt: number}
	var r *templates.Rendered
	switch j.Kind {
	case KindUpdate:
		u, err := d.events.get(ctx, j.StreamSeq, j.EventID)
		if err != nil {
			return nil, nil, err
		}
		if r, err = d.renderer.Render(u, j.Channel, rc); err != nil {
			return nil, nil, err
		}
		m.IncidentID, m.Sequence, m.Status, m.Closed = u.Event.IncidentID, u.Event.Sequence, string(u.Event.Status), u.Event.Status.Closed()
	case KindConfirm, KindFollowConfirm, KindManageLink, KindCode:
		var err error
		if r, err = d.renderDirect(j, rc); err != nil {
			return nil, nil, err
		}
	case KindEndpointDisabled:
		at, _ := time.Parse(time.RFC3339, j.Notice.At)
		var err error
		r, err = d.renderer.RenderNotice(templates.Notice{
			Kind: j.Kind, EndpointID: j.Notice.EndpointID, EndpointChannel: j.Notice.Channel, Reason: j.Notice.Reason, At: at,
		}, j.Channel, rc)
		if err != nil {
			return nil, nil, err
		}
	}
	m.Locale, m.Subject, m.Text, m.HTML = r.Locale, r.Subject, r.Text, r.HTML
	m.Body, m.Parent, m.ContentType, m.Headers = r.Body, r.Parent, r.ContentType, r.Headers
	return m, r, nil
}

// delivered records a successful send and acknowledges the job.
func (dl *deliverer) delivered(ctx context.Context, a *attempt, receipt channels.Receipt) {
	a.rec.Outcome = Delivered
	if receipt.Outbox {
		a.rec.Outcome = Outboxed
		a.rec.Reason = receipt.Detail
	}
	a.rec.Status, a.rec.ProviderID = receipt.Status, receipt.ProviderID
	dl.record(ctx, a)
	if err := a.msg.Ack(); err != nil {
		a.log().Warn("ack lost after a successful send; a redelivery will find the record and stop", "err", err)
	}
	if dl.logger.Enabled(ctx, slog.LevelDebug) {
		a.log().Debug("delivered", "outcome", a.rec.Outcome, "status", receipt.Status)
	}
}

// fail handles a failed attempt: retry with backoff, or give up.
func (dl *deliverer) fail(ctx context.Context, a *attempt, err error, class channels.Classification) {
	a.rec.Reason = oneLine(err.Error())
	var pe *channels.ProviderError
	if errors.As(err, &pe) {
		a.rec.Status, a.rec.Code = pe.Status, pe.Code
	}
	if class.Permanent {
		a.rec.Outcome = Failed
		if class.Action != channels.NoAction {
			a.rec.Action = class.Action.String()
			dl.d.applyAction(ctx, a, class.Action, err)
		}
		dl.record(ctx, a)
		a.log().Warn("delivery refused for good", "reason", a.rec.Reason, "action", a.rec.Action)
		dl.finalize(ctx, a, "refused: "+a.rec.Reason)
		return
	}
	if a.number >= dl.cfg.MaxDeliver {
		a.rec.Outcome = DeadLettered
		dl.record(ctx, a)
		a.log().Warn("attempts exhausted", "reason", a.rec.Reason)
		dl.finalize(ctx, a, fmt.Sprintf("attempts exhausted (%d): %s", a.number, a.rec.Reason))
		return
	}
	delay := dl.policy.Delay(a.number, class.After)
	next := dl.d.cfg.Now().Add(delay).UTC()
	a.rec.Outcome, a.rec.NextAttemptAt = Retrying, &next
	dl.record(ctx, a)
	a.log().Info("attempt failed; will retry", "reason", a.rec.Reason, "in", delay.String())
	dl.park(ctx, a, delay, a.number)
}

// park brings the job back after wait, out of the delivery consumer: a
// copy goes to the channel's parked subject, carrying the attempts made so
// far, and this one is acknowledged. When the copy cannot be stored, the
// job waits in the consumer instead (Nak with the delay). A copy made
// twice (the ack was lost, the job came back and was parked again) is
// dropped by the stream's duplicate window, or found done in the delivery
// log when it comes back.
func (dl *deliverer) park(ctx context.Context, a *attempt, wait time.Duration, attempts int) {
	m := &nats.Msg{Subject: parkedSubject(dl.name), Data: a.msg.Data(), Header: nats.Header{
		hdrDue:     {strconv.FormatInt(dl.d.cfg.Now().Add(wait).UnixMilli(), 10)},
		hdrAttempt: {strconv.Itoa(attempts)},
		hdrMsgID:   {a.job.ID + "." + strconv.FormatUint(a.seq, 10)},
	}}
	if a.replay {
		m.Header.Set(hdrReplay, "1")
	}
	var err error
	for try := range 3 {
		// The same Nats-Msg-Id each time: a copy stored by an attempt
		// whose answer was lost is not stored twice.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, err = dl.d.js.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	if err != nil {
		a.log().Warn("parking the job failed; it waits in the consumer", "err", err)
		if err := a.msg.NakWithDelay(wait); err != nil {
			a.log().Warn("nak lost; the job comes back after the ack wait", "err", err)
		}
		return
	}
	if err := a.msg.Ack(); err != nil {
		a.log().Warn("ack of a parked job lost; its copy is dropped as a duplicate", "err", err)
	}
}

// deliveryLimit is how many times a job may be delivered by its consumer
// before the loop takes it for one that kills its process: a job from the
// delivery consumer is delivered once per attempt it makes there (retries
// are parked); a parked copy about twice per parking.
func (dl *deliverer) deliveryLimit(parked bool) int {
	if parked {
		return maxParkedDeliveries
	}
	return dl.cfg.MaxDeliver + 1
}

// nakTransient brings the job back after a failure that is not the
// destination's (the delivery log or a bucket unavailable, another copy
// of the job in hand), later each time it happens again: 1 s, 2 s, 4 s…
// up to a minute.
func (dl *deliverer) nakTransient(a *attempt) {
	n := 1
	if md, err := a.msg.Metadata(); err == nil {
		n = int(md.NumDelivered)
	}
	none := 0.0
	_ = a.msg.NakWithDelay(Backoff{Base: time.Second, Max: time.Minute, Jitter: &none}.WithDefaults().Delay(n, 0))
}

// waiting reports whether last, a delivery's latest record, parks it until
// a time still to come after now, and then how long until then and the
// attempts it had made (a busy destination's deferral is no attempt).
func waiting(last *Record, now time.Time) (wait time.Duration, attempts int, ok bool) {
	if last == nil || last.NextAttemptAt == nil || (last.Outcome != Retrying && last.Outcome != Deferred) {
		return 0, 0, false
	}
	// A second's leeway: the copy due now may see a record written a
	// moment after its due time was computed.
	if wait = last.NextAttemptAt.Sub(now); wait <= time.Second {
		return 0, 0, false
	}
	attempts = last.Attempt
	if last.Outcome == Deferred && last.Reason == reasonBusy {
		attempts--
	}
	return wait, attempts, true
}

// claim marks job id as in hand, and reports false when it already is.
func (dl *deliverer) claim(id string) bool {
	dl.claimMu.Lock()
	defer dl.claimMu.Unlock()
	if _, ok := dl.claimed[id]; ok {
		return false
	}
	if dl.claimed == nil {
		dl.claimed = make(map[string]struct{})
	}
	dl.claimed[id] = struct{}{}
	return true
}

func (dl *deliverer) unclaim(id string) {
	dl.claimMu.Lock()
	delete(dl.claimed, id)
	dl.claimMu.Unlock()
}

// finalize moves a job that will not be retried to the dead letters and
// terminates it.
func (dl *deliverer) finalize(ctx context.Context, a *attempt, reason string) {
	dl.bury(ctx, a, a.job.ID, reason, reason)
}

// deadLetter handles a job that cannot even be read.
func (dl *deliverer) deadLetter(ctx context.Context, a *attempt, reason string) {
	dl.logger.Warn("bad job dead-lettered", "reason", reason)
	dl.bury(ctx, a, a.msg.Headers().Get(hdrMsgID), reason, "bad job")
}

// bury stores the job as a dead letter under ref, with reason, and
// terminates it with term; when the dead letter cannot be stored, the job
// comes back in 5 s.
func (dl *deliverer) bury(ctx context.Context, a *attempt, ref, reason, term string) {
	if err := dl.d.dlq.add(ctx, a.msg.Subject(), a.msg.Data(), ref, reason, a.number); err != nil {
		a.log().Error("cannot dead-letter the job; it will come back", "err", err)
		_ = a.msg.NakWithDelay(5 * time.Second)
		return
	}
	_ = a.msg.TermWithReason(term)
}

// skip records that the job was not sent, and why, and acknowledges it.
func (dl *deliverer) skip(ctx context.Context, a *attempt, outcome Outcome, reason string) {
	a.rec.Outcome, a.rec.Reason = outcome, reason
	dl.record(ctx, a)
	a.log().Info("not sent", "outcome", outcome, "reason", a.rec.Reason)
	_ = a.msg.Ack()
}

// defer_ records a deferral and brings the job back after wait, the
// deferral counted as an attempt when counted is set.
func (dl *deliverer) defer_(ctx context.Context, a *attempt, reason string, wait time.Duration, counted bool) {
	next := dl.d.cfg.Now().Add(wait).UTC()
	a.rec.Outcome, a.rec.Reason, a.rec.NextAttemptAt = Deferred, reason, &next
	dl.record(ctx, a)
	a.log().Info("deferred", "reason", reason, "until", next)
	attempts := a.number
	if !counted {
		attempts--
	}
	dl.park(ctx, a, wait, attempts)
}

// record appends the attempt's record to the delivery log, retrying a few
// times: the record is what stops a redelivered job from sending again.
// The log holds no address: one echoed by the provider in the reason is
// redacted here, for every outcome.
func (dl *deliverer) record(ctx context.Context, a *attempt) {
	a.rec.Reason = channels.RedactAddress(a.rec.Reason, a.target)
	a.rec.At = dl.d.cfg.Now().UTC()
	dl.metrics.outcome(a.rec.Outcome).Inc()
	var err error
	for i := range 3 {
		if err = dl.d.log.append(context.WithoutCancel(ctx), &a.rec); err == nil {
			return
		}
		time.Sleep(time.Duration(i+1) * 100 * time.Millisecond)
	}
	a.log().Error("delivery log record lost", "err", err, "outcome", a.rec.Outcome)
}

// errTransientLoad marks a failure to load an update that is worth retrying.
var errTransientLoad = errors.New("update temporarily unavailable")

// missingUpdateError reports an update that is gone from INCIDENTS.
type missingUpdateError struct{ seq uint64 }

func (e *missingUpdateError) Error() string {
	return fmt.Sprintf("update %d is no longer in the %s stream", e.seq, StreamIncidents)
}

// eventCache keeps recently used updates, read from INCIDENTS by stream
// sequence.
type eventCache struct {
	stream jetstream.Stream
	max    int

	mu      sync.Mutex
	entries map[uint64]templates.Update
	order   []uint64
}

func newEventCache(stream jetstream.Stream, max int) *eventCache {
	return &eventCache{stream: stream, max: max, entries: map[uint64]templates.Update{}}
}

// get returns the update stored at seq, checking it is eventID.
func (c *eventCache) get(ctx context.Context, seq uint64, eventID string) (templates.Update, error) {
	c.mu.Lock()
	u, ok := c.entries[seq]
	c.mu.Unlock()
	if ok {
		return u, nil
	}
	raw, err := c.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return u, &missingUpdateError{seq: seq}
	}
	if err != nil {
		return u, fmt.Errorf("%w: %w", errTransientLoad, err)
	}
	ev, err := incident.Decode(raw.Data, 0)
	if err != nil {
		return u, fmt.Errorf("update %d: %w", seq, err)
	}
	if ev.ID != eventID {
		return u, &missingUpdateError{seq: seq}
	}
	u = templates.Update{Event: ev, AcceptedAt: raw.Time}
	c.mu.Lock()
	if _, ok := c.entries[seq]; !ok {
		c.entries[seq] = u
		c.order = append(c.order, seq)
		if len(c.order) > c.max {
			delete(c.entries, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
	return u, nil
}

// acceptedAt returns when the update at seq was stored, if cached.
func (c *eventCache) acceptedAt(seq uint64) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.entries[seq]
	return u.AcceptedAt, ok
}
