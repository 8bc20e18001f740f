package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

// task is one target of a job in hand, on its way through the stages:
//
//	already done? → resolve → screen → render → turn → pace → send
//
// then one outcome: delivered, failed (retried later or refused),
// deferred, skipped, parked, dead-lettered or handed back. Each stage is a
// method that either moves the task on (it sets next and returns true) or
// lets it leave the worker: because it is over, or because it waits for
// something (its destination's turn, a pace, a retry of Herald's own
// infrastructure) and will be run again from next.
type task struct {
	m      *inHand
	dl     *deliverer
	target Target
	// id is the delivery id; number the attempt's number (1: the first).
	id     string
	number int
	rec    Record
	next   stage

	sub *subscribers.Subscriber
	ep  *subscribers.Endpoint
	loc *time.Location
	// addr is the endpoint's email address or phone number, kept out of
	// the delivery log's reasons and checked against suppressions.
	addr string
	msg  *channels.Message
	// key is the destination; slot whether the task holds one of its
	// slots, probe whether its send is the circuit's probe; slotAt is
	// when the slot began to serve the task (its pace, then its send: the
	// destination's own time, which paces its queue).
	key    string
	slot   bool
	probe  bool
	slotAt time.Time
	// queuedAt is when the task joined its destination's queue; refusal
	// why it was turned away from it.
	queuedAt time.Time
	refusal  refusal
	// lease is held on the delivery (seen jobs only); infra counts the
	// failures of Herald's infrastructure met so far.
	lease *lease
	infra int

	logger *slog.Logger
}

// stage is one step of a task; see task.
type stage func(*task) bool

func newTask(m *inHand, tg Target) *task {
	j := m.job
	t := &task{m: m, dl: m.dl, target: tg, id: j.deliveryID(tg), number: 1, next: (*task).resolve}
	t.rec = Record{
		DeliveryID: t.id, Kind: j.Kind, EventID: j.EventID, IncidentID: j.IncidentID, Sequence: j.Sequence,
		SubscriberID: tg.SubscriberID, EndpointID: tg.EndpointID, Channel: j.Channel,
	}
	if m.parked {
		t.number = m.attempts + 1 // a parked copy counts its attempts in its headers
	}
	if m.seen {
		t.next = (*task).checkDone
	}
	return t
}

// runTask runs t's stages until it leaves the worker. A stage that panics
// dead-letters the target (with the panic as the reason) instead of
// killing the process.
func (dl *deliverer) runTask(t *task) {
	defer func() {
		if p := recover(); p != nil {
			dl.logger.Error("delivery stage panicked; target dead-lettered", "delivery", t.id, "panic", p)
			t.releaseSlot(notSent, 0)
			t.rec.Outcome, t.rec.Reason = DeadLettered, fmt.Sprintf("internal error: %v", p)
			t.record()
			t.bury(t.rec.Reason)
		}
	}()
	for t.next(t) {
	}
}

// log returns the task's logger, with the delivery's identity (built on
// first use: most tasks log nothing).
func (t *task) log() *slog.Logger {
	if t.logger == nil {
		t.logger = t.dl.logger.With("delivery", t.id, "subscriber", t.target.SubscriberID, "endpoint", t.target.EndpointID, "attempt", t.number)
	}
	return t.logger
}

// checkDone is the first stage of a target of a job seen before: it takes
// the delivery's lease (a copy elsewhere holding it: this one waits and
// looks again), then reads the delivery log. A delivery already over is
// dropped; one parked until later (this copy came back early: its ack was
// lost, or it is a stale twin) is parked again as it was; otherwise the
// log tells the attempt's number.
func (t *task) checkDone() bool {
	dl := t.dl
	if dl.stopping.Load() {
		t.handBack()
		return false
	}
	if t.lease == nil {
		ls, ok, err := dl.d.leases.acquire(dl.sendCtx, t.id)
		if err != nil {
			return t.retryInfra(componentLeases, err)
		}
		dl.d.health.ok(componentLeases)
		if !ok {
			dl.metrics.inHand.Inc()
			t.bounce()
			return false
		}
		t.lease = &ls
		t.m.hold(ls)
	}
	done, last, err := dl.d.log.done(dl.sendCtx, t.rec.IncidentID, t.target.SubscriberID, t.id, dl.name, t.m.replay)
	if err != nil {
		return t.retryInfra(componentDeliveryLog, err)
	}
	dl.d.health.ok(componentDeliveryLog)
	if done != nil {
		if dl.logger.Enabled(dl.sendCtx, slog.LevelDebug) {
			t.log().Debug("already done; copy dropped", "outcome", done.Outcome)
		}
		dl.metrics.duplicate.Inc()
		t.over(false)
		return false
	}
	if last == nil && t.m.redelivered && !t.m.parked && !t.m.replay {
		// The process that had the job may have sent this target and
		// still be storing its record (JetStream was away): look again
		// in a moment, when that record has landed.
		t.bounce()
		return false
	}
	if !t.m.replay {
		t.number = max(t.number, nextAttempt(last))
		if wait, attempts, ok := waiting(last, dl.d.cfg.Now()); ok {
			t.log().Debug("parked job back early; parked again", "until", last.NextAttemptAt)
			t.park(wait, attempts)
			return false
		}
	}
	t.next = (*task).resolve
	return true
}

// nextAttempt is the number of the attempt that follows last, a
// delivery's latest record (nil: none). A deferral for a busy destination
// or a copy in hand is no attempt.
func nextAttempt(last *Record) int {
	switch {
	case last == nil:
		return 1
	case last.Outcome == Deferred && last.Reason == reasonBusy:
		return max(last.Attempt, 1)
	}
	return last.Attempt + 1
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

// resolve finds the target's subscriber and endpoint as they are now (a
// notice addressed directly carries its own).
func (t *task) resolve() bool {
	dl := t.dl
	var sub *subscribers.Subscriber
	var ep *subscribers.Endpoint
	var err error
	if t.m.job.To != nil {
		sub, ep = t.m.job.directTarget()
	} else if sub, ep, err = dl.d.resolve(dl.sendCtx, t.target.SubscriberID, t.target.EndpointID); err != nil {
		return t.retryInfra(componentSubscribers, err)
	}
	t.sub, t.ep = sub, ep
	if sub != nil {
		t.rec.Requested = sub.Locale // in the records of targets never rendered too (ledger.go)
	}
	if ep != nil && (dl.name == channels.Email || dl.name == channels.SMS) {
		t.addr = ep.Target()
	}
	t.next = (*task).screen
	return true
}

// screen skips the targets that must not be sent (gone, disabled,
// suppressed, superseded) and defers those in their quiet hours.
func (t *task) screen() bool {
	d, j := t.dl.d, t.m.job
	switch {
	case d.recalls.recalled(j): // recall.go
		t.next = (*task).recall
		return t.recall()
	case t.ep == nil:
		t.skip(Unsubscribed, "the subscriber or endpoint no longer exists")
		return false
	case t.ep.Disabled != nil:
		t.skip(Disabled, "endpoint disabled: "+t.ep.Disabled.Reason)
		return false
	case t.addr != "" && d.supp.Contains(j.Channel, t.addr):
		t.skip(Suppressed, "address suppressed")
		return false
	case j.Kind == KindUpdate && *t.dl.cfg.LatestOnly && d.snaps.latestSeq(j.IncidentID) > j.Sequence:
		t.skip(Superseded, fmt.Sprintf("superseded by update %d", d.snaps.latestSeq(j.IncidentID)))
		return false
	}
	t.loc = d.location(t.sub.Timezone)
	if j.Kind == KindReminder {
		return t.screenReminder() // maintenance.go: still standing, in time, preferences, quiet hours
	}
	if t.ep.QuietHours != nil && j.Kind == KindUpdate && j.Priority != incident.P1 {
		if quiet, end := t.ep.QuietHours.Window(d.cfg.Now(), t.loc); quiet {
			t.deferFor("quiet hours", end.Sub(d.cfg.Now())+time.Duration(d.cfg.Rand()*float64(time.Minute)), true)
			return false
		}
	}
	t.next = (*task).capSMS
	return true
}

// render loads the update (or notice) and renders it for the endpoint.
func (t *task) render() bool {
	dl := t.dl
	m, rendered, err := dl.render(dl.sendCtx, t.m.job, t.id, t.sub, t.ep, t.loc, t.number)
	if err != nil {
		var missing *missingUpdateError
		switch {
		case errors.As(err, &missing):
			t.fail(err, channels.Classification{Permanent: true})
		case errors.Is(err, errTransientLoad):
			return t.retryInfra(componentIncidents, err)
		default:
			t.fail(fmt.Errorf("render: %w", err), channels.Classification{Permanent: true})
		}
		return false
	}
	t.rec.Locale, t.rec.Requested, t.rec.Fallback = rendered.Locale, rendered.Requested, rendered.Fallback
	t.msg = m
	t.key = destinationKey(dl.name, t.ep.Target())
	t.next = (*task).turn
	return true
}

// turn waits for a slot of the destination: at once, or queued (without
// a worker) until a send ends; a target whose turn is far, or whose
// destination's circuit is open, is deferred.
func (t *task) turn() bool {
	dl := t.dl
	if dl.stopping.Load() {
		t.handBack()
		return false
	}
	granted, refused := dl.dests.acquire(t)
	if refused != nil {
		t.refuse(*refused)
		return false
	}
	if !granted {
		return false // queued: release hands it a slot
	}
	t.holdSlot()
	return true
}

// holdSlot records that t holds its destination's slot, and moves it on.
func (t *task) holdSlot() {
	t.slot, t.slotAt = true, time.Time{}
	t.next = (*task).send
	if t.dl.cfg.Pace > 0 {
		t.next = (*task).pace
	}
}

// paceMargin: turns of a paced destination are reserved a pace plus a
// paceMargin-th of it apart, so that a request slowed on its way by up to
// that much still reaches the destination a full pace after the one
// before it, sent by another process perhaps (Slack counts arrivals).
const paceMargin = 20

// pace reserves the destination's next turn, shared by every process
// (Slack's one message per second per channel): a turn further than
// MaxDestinationWait is given up and the target deferred until about then;
// a nearer one is waited for on a timer, holding the slot.
func (t *task) pace() bool {
	dl := t.dl
	t.slotAt = dl.d.cfg.Now()
	start, ok, err := dl.d.pacer.reserve(dl.sendCtx, paceKey("dest", t.key), dl.cfg.Pace+dl.cfg.Pace/paceMargin, 1, max(dl.cfg.MaxDestinationWait, 0))
	if err != nil {
		t.releaseSlot(notSent, 0)
		t.next = (*task).turn
		return t.retryInfra(componentPacing, err)
	}
	dl.d.health.ok(componentPacing)
	now := dl.d.cfg.Now()
	if !ok {
		t.releaseSlot(notSent, 0)
		t.refuse(refusal{reasonBusy, start.Sub(now), true})
		return false
	}
	t.next = (*task).send
	if wait := start.Sub(now); wait > 0 {
		dl.after(t, wait)
		return false
	}
	return true
}

// send waits for the channel's rate, then sends.
func (t *task) send() bool {
	dl, d := t.dl, t.dl.d
	if dl.stopping.Load() || !d.nc.IsConnected() {
		// Stopping, or cut off from NATS (a job whose ack cannot be
		// stored must not send: another process will get it).
		t.releaseSlot(notSent, 0)
		t.handBack()
		return false
	}
	if d.writesStalled() {
		// JetStream does not acknowledge writes: a send now could not be
		// recorded before a copy of its job meets it. Wait for the
		// writes to flow again.
		t.releaseSlot(notSent, 0)
		t.next = (*task).turn
		return !dl.gate(t) // held, or writes flow again already: take a turn again
	}
	if dl.rate != nil {
		at, err := dl.rate.turn(dl.sendCtx)
		if err != nil {
			t.releaseSlot(notSent, 0)
			t.next = (*task).turn
			return t.retryInfra(componentPacing, err)
		}
		if wait := at.Sub(d.cfg.Now()); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-dl.stopped:
				timer.Stop()
				t.releaseSlot(notSent, 0)
				t.handBack()
				return false
			}
		}
	}
	if d.recalls.recalled(t.m.job) { // recalled while it waited for its turn (recall.go)
		t.releaseSlot(notSent, 0)
		t.next = (*task).recall
		return t.recall()
	}
	// A webhook secret being rotated signs with both secrets.
	ep := channels.Endpoint{SubscriberID: t.sub.ID, ID: t.ep.ID, Address: t.ep.Target(), Secret: t.ep.SigningSecret(d.cfg.Now()), Name: t.sub.Name}
	if t.slotAt.IsZero() {
		t.slotAt = d.cfg.Now()
	}
	dl.metrics.inflight.Inc()
	ctx, cancel := context.WithTimeout(dl.sendCtx, dl.cfg.SendTimeout)
	start := d.cfg.Now()
	receipt, err := dl.ch.Send(ctx, ep, t.msg)
	took := d.cfg.Now().Sub(start)
	cancel()
	dl.metrics.inflight.Dec()
	if dl.cfg.Pace > 0 && !errors.Is(err, context.Canceled) {
		// The next turn comes a pace after this answer, not only after
		// this start: the destination saw the request by now.
		if perr := d.pacer.atLeast(dl.sendCtx, paceKey("dest", t.key), d.cfg.Now().Add(dl.cfg.Pace)); perr != nil {
			t.log().Warn("pace not extended", "error", perr)
		}
	}
	class := channels.Classify(err)
	switch {
	case err == nil || class.Permanent || answeredRefusal(err):
		t.releaseSlot(answered, d.cfg.Now().Sub(t.slotAt))
	case errors.Is(err, context.Canceled):
		t.releaseSlot(notSent, 0)
	default:
		t.releaseSlot(failedTransient, d.cfg.Now().Sub(t.slotAt))
	}
	if err != nil && dl.sendCtx.Err() != nil {
		// Herald is stopping: not the destination's fault, not an attempt.
		t.handBack()
		return false
	}
	dl.metrics.send.Observe(took.Seconds())
	if t.number == 1 && t.m.job.Kind == KindUpdate {
		if acc, ok := d.events.acceptedAt(t.m.job.StreamSeq); ok {
			dl.metrics.lag.Observe(d.cfg.Now().Sub(acc).Seconds())
		}
	}
	t.rec.DurationMS = float64(took.Microseconds()) / 1000
	t.rec.BodySHA256 = receipt.BodySHA256
	if err == nil {
		t.sendWorked()
		t.delivered(receipt)
	} else {
		t.fail(t.sendFailed(err, class))
	}
	return false
}

// releaseSlot gives t's destination slot back, if it holds one, and starts
// the queued targets that get a slot (or defers them, if the circuit
// opened).
func (t *task) releaseSlot(res sendResult, held time.Duration) {
	if !t.slot {
		return
	}
	t.slot = false
	dl := t.dl
	started, away, refused := dl.dests.release(t.key, t.probe, res, held)
	for _, s := range started {
		s.holdSlot()
		dl.workers.push(s)
	}
	for _, a := range away {
		a.refusal, a.next = refused, (*task).turnedAway
		dl.workers.push(a)
	}
}

// turnedAway defers a target turned away from its destination's queue.
func (t *task) turnedAway() bool {
	t.refuse(t.refusal)
	return false
}

// refuse defers a target its destination refused. Waiting for a busy
// destination is no attempt. For a failing one it is, and the target also
// keeps to its own backoff: a destination down for hours does not use up
// its targets' attempts at the pace of the breaker's cooldown.
func (t *task) refuse(r refusal) {
	d := t.dl.d
	wait := r.wait + time.Duration(d.cfg.Rand()*float64(r.wait/2))
	if !r.busy {
		wait = max(wait, t.dl.policy.Delay(t.number, 0))
	}
	t.deferFor(r.reason, wait, !r.busy)
}

// retryInfra runs the stage again later, after a failure of Herald's own
// infrastructure: 1 s, 2 s… up to a minute, without limit. The job stays
// in hand meanwhile; no attempt is used.
func (t *task) retryInfra(component string, err error) bool {
	dl := t.dl
	dl.infraTrouble(component, err)
	if dl.stopping.Load() {
		t.handBack()
		return false
	}
	t.infra++
	dl.after(t, transientDelay(t.infra))
	return false
}

// delivered records a successful send.
func (t *task) delivered(receipt channels.Receipt) {
	t.rec.Outcome = Delivered
	if receipt.Outbox {
		t.rec.Outcome = Outboxed
		t.rec.Reason = receipt.Detail
	}
	t.rec.Status, t.rec.ProviderID = receipt.Status, receipt.ProviderID
	t.record()
	if t.dl.logger.Enabled(t.dl.sendCtx, slog.LevelDebug) {
		t.log().Debug("delivered", "outcome", t.rec.Outcome, "status", receipt.Status)
	}
	t.over(false)
}

// fail handles a failed attempt: retried later, or given up (refused for
// good, or attempts exhausted) and dead-lettered.
func (t *task) fail(err error, class channels.Classification) {
	dl := t.dl
	t.rec.Reason = oneLine(err.Error())
	var pe *channels.ProviderError
	if errors.As(err, &pe) {
		t.rec.Status, t.rec.Code = pe.Status, pe.Code
	}
	switch {
	case class.Permanent:
		t.rec.Outcome = Failed
		if class.Action != channels.NoAction {
			t.rec.Action = class.Action.String()
			dl.d.applyAction(dl.sendCtx, t.target.SubscriberID, t.target.EndpointID, dl.name, t.addr, t.log(), class.Action, err)
		}
		t.record()
		t.log().Warn("delivery refused for good", "reason", t.rec.Reason, "action", t.rec.Action)
		t.bury("refused: " + t.rec.Reason)
	case t.number >= dl.cfg.MaxDeliver:
		t.rec.Outcome = DeadLettered
		t.record()
		t.log().Warn("attempts exhausted", "reason", t.rec.Reason)
		t.bury(fmt.Sprintf("attempts exhausted (%d): %s", t.number, t.rec.Reason))
	default:
		delay := dl.policy.Delay(t.number, class.After)
		next := dl.d.cfg.Now().Add(delay).UTC()
		t.rec.Outcome, t.rec.NextAttemptAt = Retrying, &next
		t.record()
		t.log().Info("attempt failed; will retry", "reason", t.rec.Reason, "in", delay.String())
		t.park(delay, t.number)
	}
}

// deferFor records a deferral and parks the target for wait, the deferral
// counted as an attempt when counted is set.
func (t *task) deferFor(reason string, wait time.Duration, counted bool) {
	next := t.dl.d.cfg.Now().Add(wait).UTC()
	t.rec.Outcome, t.rec.Reason, t.rec.NextAttemptAt = Deferred, reason, &next
	t.record()
	t.log().Info("deferred", "reason", reason, "until", next)
	attempts := t.number
	if !counted {
		attempts--
	}
	t.park(wait, attempts)
}

// skip records that the target was not sent, and why.
func (t *task) skip(outcome Outcome, reason string) {
	t.rec.Outcome, t.rec.Reason = outcome, reason
	t.record()
	t.log().Info("not sent", "outcome", outcome, "reason", t.rec.Reason)
	t.over(false)
}

// bounceDelay is how long a copy that found its delivery's lease taken (or
// the log silent about a target of a redelivered job) waits before it looks
// again (plus up to as much again, at random).
const bounceDelay = 2 * time.Second

// bounce parks a copy whose delivery another copy may hold: when it comes
// back, the log says what became of the delivery. It is no attempt and
// writes no record.
func (t *task) bounce() {
	t.log().Debug("another copy of the delivery is in hand; this one looks again later")
	t.park(bounceDelay+time.Duration(t.dl.d.cfg.Rand()*float64(bounceDelay)), t.number-1)
}

// single returns the JSON of the single job that carries t alone.
func (t *task) single() []byte {
	if !t.m.job.batch() {
		return t.m.msg.Data()
	}
	data, err := encodeJob(t.m.job.single(t.target))
	if err != nil {
		panic(fmt.Sprintf("encoding a job: %v", err)) // a decoded job always encodes
	}
	return data
}

// park brings the target back after wait, out of the delivery consumer: a
// single job carrying it goes to the channel's parked subject, with the
// attempts made so far, and the target is over for this job. A copy made
// twice (the job's ack was lost, it came back and was parked again) has the
// same Nats-Msg-Id, and the stream's duplicate window drops it; beyond the
// window the second copy finds the delivery done or the lease taken.
func (t *task) park(wait time.Duration, attempts int) {
	dl := t.dl
	m := &nats.Msg{Subject: parkedSubject(dl.name), Data: t.single(), Header: nats.Header{
		hdrDue:     {strconv.FormatInt(dl.d.cfg.Now().Add(wait).UnixMilli(), 10)},
		hdrAttempt: {strconv.Itoa(max(attempts, 0))},
		hdrMsgID:   {t.id + "." + strconv.FormatUint(t.m.seq, 10)},
	}}
	if t.m.replay {
		m.Header.Set(hdrReplay, "1")
	}
	t.publish(m, false)
	t.over(false)
}

// bury dead-letters the target, under its delivery id, with reason.
func (t *task) bury(reason string) {
	t.publish(t.dl.d.dlq.msg(t.m.msg.Subject(), t.single(), t.id, reason, t.number), false)
	t.over(false)
}

// record appends the attempt's record to the delivery log; the job is
// acknowledged only once it is stored. The log holds no address: one
// echoed by the provider in the reason is redacted here, for every
// outcome.
func (t *task) record() {
	t.rec.Attempt = t.number
	t.rec.Reason = channels.RedactAddress(t.rec.Reason, t.addr)
	t.rec.At = t.dl.d.cfg.Now().UTC()
	t.dl.metrics.outcome(t.rec.Outcome).Inc()
	t.publish(recordMsg(&t.rec), true)
}

// publish stores m asynchronously for the job, which waits for it before
// its ack; record says m is a delivery-log record.
func (t *task) publish(m *nats.Msg, record bool) {
	w := write{msg: m, record: record}
	t.dl.publishWrite(&w)
	t.m.add(w) // a publish refused at once is retried by the commit
}

// handBack returns the target, not sent, to the stream: its job will be
// delivered again, to another process or the next start.
func (t *task) handBack() {
	t.releaseSlot(notSent, 0)
	t.over(true)
}

// over ends the task for its job; back: it was handed back.
func (t *task) over(back bool) {
	t.m.finished(back)
}
