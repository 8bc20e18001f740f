package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

// fanout consumes INCIDENTS and turns each update into batch jobs: per
// channel, the update's targets split in batches whose membership the
// incident snapshot fixes at the first fan-out.
type fanout struct {
	d  *Dispatcher
	js jetstream.JetStream // dedicated to the fan-out's asynchronous publishes
}

func newFanout(d *Dispatcher) (*fanout, error) {
	js, err := jetstream.New(d.nc,
		jetstream.WithPublishAsyncMaxPending(d.cfg.FanoutMaxPending),
		jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return nil, err
	}
	return &fanout{d: d, js: js}, nil
}

// run consumes updates until ctx ends: one loop per fan-out partition, each
// handling one update at a time in stream order across all Herald processes
// (the partition's consumer allows a single unacknowledged message), so that
// the updates of one incident stay in order while those of different
// incidents fan out at once.
func (f *fanout) run(ctx context.Context) error {
	names := make([]string, 0, fanoutPartitions+1)
	for p := range fanoutPartitions {
		names = append(names, fanoutConsumer(p))
	}
	if _, err := f.d.topo.Incidents.Consumer(ctx, ConsumerFanout); err == nil {
		names = append(names, ConsumerFanout) // updates stored before partitioning
	}
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Go(func() { errs[i] = f.loop(ctx, name) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loop consumes one partition's updates until ctx ends. Updates are
// pushed to the handler (see deliverer.run for why not through a channel);
// the handler works on one at a time.
func (f *fanout) loop(ctx context.Context, name string) error {
	cons, err := f.d.topo.Incidents.Consumer(ctx, name)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("fan-out consumer %s: %w", name, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if ctx.Err() != nil {
			_ = msg.Nak() // stopping: another process or the next start takes it
			return
		}
		f.handle(ctx, msg)
	}, jetstream.PullMaxMessages(1), jetstream.PullExpiry(pullExpiry),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			f.d.logger.Debug("fan-out: pulling updates", "consumer", name, "err", err)
		}))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("fan-out consumer %s: %w", name, err)
	}
	<-ctx.Done()
	cc.Stop()
	select {
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
	}
	return nil
}

// fanoutAction is what the snapshot says to do with an update.
type fanoutAction int

const (
	actionNew       fanoutAction = iota // first time: fan out
	actionResume                        // an earlier fan-out did not finish: fan out again, with recheck
	actionDuplicate                     // already fanned out (or recorded): ack
	actionConflict                      // another event holds this sequence: dead letter
	actionQuiet                         // notify: false: recorded, ack
	actionLate                          // older than the incident's latest update: recorded, ack
)

// plan is the snapshot's answer to an update: what to do, and for a fan-out
// the number of batches of each channel.
type plan struct {
	action  fanoutAction
	holder  string // the event holding the sequence, for a conflict
	batches map[string]int
}

// handle fans one update out. It acknowledges the update only once every
// batch is stored; on any failure it leaves the update for redelivery.
func (f *fanout) handle(ctx context.Context, msg jetstream.Msg) {
	d := f.d
	start := d.cfg.Now()
	md, err := msg.Metadata()
	if err != nil {
		d.logger.Error("fan-out: message without metadata", "err", err)
		_ = msg.Term()
		return
	}
	ref := msg.Headers().Get(hdrMsgID)
	ev, err := incident.Decode(msg.Data(), d.cfg.MaxEventBytes)
	if id, ok := incidentOfSubject(msg.Subject()); err == nil && (!ok || id != ev.IncidentID) {
		err = incident.FieldErrors{{Field: "incident_id", Message: fmt.Sprintf("%q does not match the subject %s", ev.IncidentID, msg.Subject())}}
	}
	if err != nil {
		f.reject(ctx, msg, ref, "invalid event: "+err.Error())
		return
	}
	logger := d.logger.With("event", ev.ID, "incident", ev.IncidentID, "sequence", ev.Sequence)
	if unknown := d.catalog.Unknown(ev.Components); len(unknown) > 0 {
		logger.Warn("update names components missing from the catalog; only subscribers of all components get them", "components", unknown)
	}
	prio := ev.Priority
	if prio == "" {
		prio = d.cfg.UnratedPriority
	}
	var targets []subscribers.Target
	if ev.ShouldNotify() {
		targets = d.index.Audience(subscribers.Query{Components: ev.Components, Priority: prio, Status: ev.Status, IncidentID: ev.IncidentID, Sequence: ev.Sequence})
	}

	p, err := f.begin(ctx, ev, md.Sequence.Stream, targets)
	if err != nil {
		d.health.fail(componentSnapshots, err)
		logger.Warn("fan-out: snapshot unavailable; the update comes back", "err", err)
		_ = msg.NakWithDelay(transientDelay(int(md.NumDelivered)))
		return
	}
	d.health.ok(componentSnapshots)
	switch p.action {
	case actionDuplicate:
		logger.Info("update already fanned out; ignored")
		d.metrics.events.WithLabelValues("duplicate").Inc()
		_ = msg.DoubleAck(ctx)
		return
	case actionConflict:
		f.reject(ctx, msg, ev.ID, fmt.Sprintf("sequence %d of incident %s is already used by event %s", ev.Sequence, ev.IncidentID, p.holder))
		return
	case actionQuiet:
		logger.Info("quiet update recorded; nobody notified")
		d.metrics.events.WithLabelValues("quiet").Inc()
		_ = msg.DoubleAck(ctx)
		return
	case actionLate:
		logger.Warn("update older than the incident's latest; recorded, sent to nobody")
		d.metrics.events.WithLabelValues("late").Inc()
		_ = msg.DoubleAck(ctx)
		return
	}

	stopProgress := keepAlive(msg, d.cfg.FanoutAckWait/3)
	recheck := p.action == actionResume || md.NumDelivered > 1 || msg.Headers().Get(hdrReplay) != ""
	jobs, err := f.publish(ctx, ev, md.Sequence.Stream, prio, targets, p.batches, recheck)
	if err == nil { // a maintenance announcement parks its reminders (maintenance.go)
		var parked int
		parked, err = f.remind(ctx, ev, md.Sequence.Stream, prio, targets, p.batches)
		jobs += parked
	}
	stopProgress()
	if err != nil {
		d.health.fail(componentDeliveries, err)
		logger.Warn("fan-out: publishing batches failed; the update will be fanned out again", "err", err, "published", jobs)
		_ = msg.NakWithDelay(transientDelay(int(md.NumDelivered)))
		return
	}
	d.health.ok(componentDeliveries)
	if err := f.finish(ctx, ev, len(targets)); err != nil {
		d.health.fail(componentSnapshots, err)
		logger.Warn("fan-out: snapshot unavailable; the update will be fanned out again", "err", err)
		_ = msg.NakWithDelay(transientDelay(int(md.NumDelivered)))
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		logger.Warn("fan-out: ack lost; the update will be seen again and ignored", "err", err)
	}
	d.metrics.events.WithLabelValues("fanned_out").Inc()
	d.metrics.fanoutSeconds.Observe(d.cfg.Now().Sub(start).Seconds())
	logger.Info("update fanned out", "targets", len(targets), "jobs", jobs, "recheck", recheck, "took", d.cfg.Now().Sub(start).String())
}

// reject moves a bad update to the dead letters and terminates it; if the
// dead letter cannot be stored the update is retried instead.
func (f *fanout) reject(ctx context.Context, msg jetstream.Msg, ref, reason string) {
	if err := f.d.dlq.add(ctx, msg.Subject(), msg.Data(), ref, reason, 0); err != nil {
		f.d.health.fail(componentDeadLetters, err)
		f.d.logger.Error("fan-out: cannot dead-letter a bad update; retrying", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	f.d.logger.Warn("update dead-lettered", "ref", ref, "subject", msg.Subject(), "reason", reason)
	f.d.metrics.events.WithLabelValues("dead_lettered").Inc()
	_ = msg.TermWithReason("dead-lettered")
}

// begin records in the snapshot that the update is being fanned out and
// says what to do with it. Only the incident's latest update decides: an
// update whose sequence is not above it was fanned out (or recorded)
// already, or comes late; either way it is sent to nobody. targets is the
// audience, from which a new fan-out's batch counts are fixed.
func (f *fanout) begin(ctx context.Context, ev *incident.Event, streamSeq uint64, targets []subscribers.Target) (plan, error) {
	var p plan
	now := f.d.cfg.Now().UTC()
	_, err := f.d.snaps.update(ctx, ev.IncidentID, func(s *Snapshot) error {
		p = plan{}
		switch u := s.update(ev.Sequence); {
		case s.LatestSeq > 0 && ev.Sequence == s.LatestSeq:
			switch {
			case s.latestEventID() != ev.ID:
				p.action, p.holder = actionConflict, s.latestEventID()
			case u != nil && u.State == stateFanningOut:
				p.action, p.batches = actionResume, u.Batches
			default:
				p.action = actionDuplicate
			}
			return errNoChange
		case ev.Sequence < s.LatestSeq && u != nil:
			p.action = actionDuplicate
			if u.EventID != ev.ID {
				p.action, p.holder = actionConflict, u.EventID
			}
			return errNoChange
		case ev.Sequence < s.LatestSeq:
			p.action = actionLate
			s.add(UpdateState{Sequence: ev.Sequence, EventID: ev.ID, StreamSeq: streamSeq, State: stateLate, At: now})
			sortUpdates(s)
			s.UpdatedAt = now
			return nil
		}
		st := UpdateState{Sequence: ev.Sequence, EventID: ev.ID, StreamSeq: streamSeq, State: stateFanningOut, At: now}
		p.action = actionNew
		if !ev.ShouldNotify() {
			st.State, p.action = stateQuiet, actionQuiet
		} else {
			st.Batches = f.batchCounts(targets)
			p.batches = st.Batches
			st.ChannelTargets = channelTargets(targets) // progress.go
		}
		s.add(st)
		s.LatestSeq, s.LatestEventID, s.Status, s.Priority = ev.Sequence, ev.ID, ev.Status, ev.Priority
		s.Title, s.Components, s.UpdatedAt = ev.Title.String(), ev.Components, now
		s.Maintenance = s.Maintenance.next(ev) // maintenance.go
		return nil
	})
	return p, err
}

// sortUpdates keeps a snapshot's updates in sequence order after a late
// one was added at the end.
func sortUpdates(s *Snapshot) {
	for i := len(s.Updates) - 1; i > 0 && s.Updates[i].Sequence < s.Updates[i-1].Sequence; i-- {
		s.Updates[i], s.Updates[i-1] = s.Updates[i-1], s.Updates[i]
	}
}

// batchCounts returns the number of batches of each channel of targets:
// enough for BatchSize targets each.
func (f *fanout) batchCounts(targets []subscribers.Target) map[string]int {
	counts := map[string]int{}
	for _, t := range targets {
		counts[t.Channel]++
	}
	for ch, n := range counts {
		counts[ch] = batchCount(n, f.d.cfg.BatchSize)
	}
	return counts
}

// finish marks the update fanned out.
func (f *fanout) finish(ctx context.Context, ev *incident.Event, targets int) error {
	now := f.d.cfg.Now().UTC()
	_, err := f.d.snaps.update(ctx, ev.IncidentID, func(s *Snapshot) error {
		u := s.update(ev.Sequence)
		if u == nil {
			s.add(UpdateState{Sequence: ev.Sequence, EventID: ev.ID})
			u = &s.Updates[len(s.Updates)-1]
		}
		u.State, u.Targets, u.At = stateDone, targets, now
		s.UpdatedAt = now
		return nil
	})
	return err
}

// publish stores the batches of targets: per channel, batches[channel]
// batches (one more count is taken when the snapshot names none), each
// target in the batch of its subscriber (bucketOf). Publishes are
// asynchronous and pipelined, with at most FanoutMaxPending batches
// awaiting their acknowledgement, so memory stays bounded even when
// DELIVERIES refuses them; a refused publish is tried again a few times,
// then the fan-out gives up (the update is fanned out again later). Each
// batch's Nats-Msg-Id is its batch id, so publishing the same update again
// inside the duplicate window stores nothing new. It returns the number of
// batches stored.
func (f *fanout) publish(ctx context.Context, ev *incident.Event, streamSeq uint64, prio incident.Priority, targets []subscribers.Target, batches map[string]int, recheck bool) (int, error) {
	enc, err := newJobEncoder(ev, streamSeq, prio)
	if err != nil {
		return 0, err
	}
	// Group the targets by channel, then by batch.
	byChannel := map[string][]int32{}
	for i := range targets {
		byChannel[targets[i].Channel] = append(byChannel[targets[i].Channel], int32(i))
	}
	pub := newAsyncPublisher(ctx, f.js, f.d.cfg.FanoutMaxPending)
	for _, ch := range channels.Names() {
		members := byChannel[ch]
		if len(members) == 0 {
			continue
		}
		buckets := bucketize(members, batchCountOr(batches[ch], len(members), f.d.cfg.BatchSize), func(i int32) string { return targets[i].SubscriberID })
		for b, m := range buckets {
			if len(m) == 0 {
				continue
			}
			id := BatchID(ev.ID, ch, b)
			msg := &nats.Msg{Subject: deliverySubject(ch), Header: nats.Header{hdrMsgID: []string{id}},
				Data: enc.encodeBatch(make([]byte, 0, 192+40*len(m)), id, ch, targets, m)}
			if recheck {
				msg.Header[hdrRecheck] = []string{"1"}
			}
			if err := pub.add(msg); err != nil {
				return pub.stored, err
			}
			f.d.metrics.jobs.WithLabelValues(ch).Inc()
		}
		f.d.metrics.targets.WithLabelValues(ch).Add(float64(len(members)))
	}
	err = pub.flush()
	return pub.stored, err
}

// pendingPublish is an asynchronous publish awaiting its acknowledgement.
type pendingPublish struct {
	fut jetstream.PubAckFuture
	msg *nats.Msg
}

// asyncPublisher publishes messages asynchronously with at most max
// awaiting their acknowledgement; a publish that fails is tried again a
// few times (see retryPublish) before the publisher gives up.
type asyncPublisher struct {
	ctx     context.Context
	js      jetstream.JetStream
	pending []pendingPublish
	// stored counts the messages acknowledged.
	stored int
}

func newAsyncPublisher(ctx context.Context, js jetstream.JetStream, limit int) *asyncPublisher {
	return &asyncPublisher{ctx: ctx, js: js, pending: make([]pendingPublish, 0, max(limit, 1))}
}

// add publishes m, first waiting for the oldest publish when max are
// pending.
func (p *asyncPublisher) add(m *nats.Msg) error {
	if len(p.pending) == cap(p.pending) {
		if err := p.settle(p.pending[0]); err != nil {
			return err
		}
		p.pending = slices.Delete(p.pending, 0, 1)
	}
	fut, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(5*time.Second))
	if err != nil {
		return err
	}
	p.pending = append(p.pending, pendingPublish{fut: fut, msg: m})
	return nil
}

// flush waits for every pending publish.
func (p *asyncPublisher) flush() error {
	for _, pp := range p.pending {
		if err := p.settle(pp); err != nil {
			return err
		}
	}
	p.pending = p.pending[:0]
	return nil
}

func (p *asyncPublisher) settle(pp pendingPublish) error {
	select {
	case <-pp.fut.Ok():
	case err := <-pp.fut.Err():
		// The message id makes publishing a stored message again harmless.
		if err := retryPublish(p.ctx, func() error {
			_, err := p.js.PublishMsg(p.ctx, pp.msg)
			return err
		}, err); err != nil {
			return err
		}
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
	p.stored++
	return nil
}

// batchCount is the number of batches of size targets that n targets
// make.
func batchCount(n, size int) int { return (n + size - 1) / size }

// batchCountOr is fixed, the batch count a snapshot fixed at the first
// fan-out, or when it names none (0), the count n targets make.
func batchCountOr(fixed, n, size int) int {
	if fixed > 0 {
		return fixed
	}
	return batchCount(n, size)
}

// bucketize spreads members over n batches, each in the batch of its
// subscriber (bucketOf of key): the same member lands in the same batch
// whenever the count is the same, which keeps batch membership fixed.
func bucketize[T any](members []T, n int, key func(T) string) [][]T {
	buckets := make([][]T, n)
	for _, m := range members {
		b := bucketOf(key(m), n)
		buckets[b] = append(buckets[b], m)
	}
	return buckets
}

// retryPublish tries publish again, up to four times over about ten
// seconds, after the first attempt failed with first.
func retryPublish(ctx context.Context, publish func() error, first error) error {
	err := first
	for try := range 4 {
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(1<<try) * 600 * time.Millisecond):
		}
		if err = publish(); err == nil {
			return nil
		}
	}
	return err
}

// keepAlive tells JetStream the message is still being worked on, every
// period, until the returned function is called; then runs also, if set.
func keepAlive(msg jetstream.Msg, every time.Duration, also ...func()) (stop func()) {
	if every <= 0 {
		every = 10 * time.Second
	}
	// A timer, not a goroutine: most jobs finish long before it fires.
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		_ = msg.InProgress()
		for _, f := range also {
			f()
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(every)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}
