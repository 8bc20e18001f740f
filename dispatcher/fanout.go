package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

// fanout consumes INCIDENTS and turns each update into one job per matching
// endpoint.
type fanout struct {
	d        *Dispatcher
	js       jetstream.JetStream // dedicated: its async-publish error handler is ours
	subjects map[string]string

	mu     sync.Mutex
	failed []*nats.Msg
}

func newFanout(d *Dispatcher) (*fanout, error) {
	f := &fanout{d: d, subjects: map[string]string{}}
	for _, name := range channels.Names() {
		f.subjects[name] = deliverySubject(name)
	}
	js, err := jetstream.New(d.nc,
		jetstream.WithPublishAsyncMaxPending(d.cfg.FanoutMaxPending),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			f.mu.Lock()
			f.failed = append(f.failed, m)
			f.mu.Unlock()
		}))
	if err != nil {
		return nil, err
	}
	f.js = js
	return f, nil
}

// run consumes updates until ctx ends. One update is handled at a time, in
// stream order, across all Herald processes (the consumer allows a single
// unacknowledged message).
func (f *fanout) run(ctx context.Context) error {
	cons, err := f.d.topo.Incidents.Consumer(ctx, ConsumerFanout)
	if err != nil {
		return fmt.Errorf("fan-out consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1), jetstream.PullExpiry(pullExpiry)) // see deliverer.run
	if err != nil {
		return fmt.Errorf("fan-out consumer: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return nil
			}
			f.d.logger.Warn("fan-out: fetching updates", "err", err)
			continue
		}
		f.handle(ctx, msg)
	}
}

// fanoutAction is what the snapshot says to do with an update.
type fanoutAction int

const (
	actionNew       fanoutAction = iota // first time: fan out
	actionResume                        // an earlier fan-out did not finish: fan out again, with recheck
	actionDuplicate                     // already fanned out: ack
	actionConflict                      // another event holds this sequence: dead letter
	actionQuiet                         // notify: false: recorded, ack
)

// handle fans one update out. It acknowledges the update only once every
// job is stored; on any failure it leaves the update for redelivery.
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
	if err == nil && msg.Subject() != IncidentSubject(ev.IncidentID) {
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

	action, holder, err := f.begin(ctx, ev, md.Sequence.Stream)
	if err != nil {
		logger.Warn("fan-out: snapshot", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	switch action {
	case actionDuplicate:
		logger.Info("update already fanned out; ignored")
		d.metrics.events.WithLabelValues("duplicate").Inc()
		_ = msg.DoubleAck(ctx)
		return
	case actionConflict:
		f.reject(ctx, msg, ev.ID, fmt.Sprintf("sequence %d of incident %s is already used by event %s", ev.Sequence, ev.IncidentID, holder))
		return
	case actionQuiet:
		logger.Info("quiet update recorded; nobody notified")
		d.metrics.events.WithLabelValues("quiet").Inc()
		_ = msg.DoubleAck(ctx)
		return
	}

	stopProgress := keepAlive(msg, d.cfg.FanoutAckWait/3)
	recheck := action == actionResume || md.NumDelivered > 1 || msg.Headers().Get(hdrReplay) != ""
	prio := ev.Priority
	if prio == "" {
		prio = d.cfg.UnratedPriority
	}
	targets := d.index.Audience(subscribers.Query{Components: ev.Components, Priority: prio, Status: ev.Status, IncidentID: ev.IncidentID, Sequence: ev.Sequence})
	n, err := f.publish(ctx, ev, md.Sequence.Stream, prio, targets, recheck)
	stopProgress()
	if err != nil {
		logger.Warn("fan-out: publishing jobs failed; the update will be fanned out again", "err", err, "published", n)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if err := f.finish(ctx, ev, n); err != nil {
		logger.Warn("fan-out: snapshot", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		logger.Warn("fan-out: ack lost; the update will be seen again and ignored", "err", err)
	}
	d.metrics.events.WithLabelValues("fanned_out").Inc()
	d.metrics.fanoutSeconds.Observe(d.cfg.Now().Sub(start).Seconds())
	logger.Info("update fanned out", "jobs", n, "recheck", recheck, "took", d.cfg.Now().Sub(start).String())
}

// reject moves a bad update to the dead letters and terminates it; if the
// dead letter cannot be stored the update is retried instead.
func (f *fanout) reject(ctx context.Context, msg jetstream.Msg, ref, reason string) {
	if err := f.d.dlq.add(ctx, msg.Subject(), msg.Data(), ref, reason, 0); err != nil {
		f.d.logger.Error("fan-out: cannot dead-letter a bad update; retrying", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	f.d.logger.Warn("update dead-lettered", "ref", ref, "subject", msg.Subject(), "reason", reason)
	f.d.metrics.events.WithLabelValues("dead_lettered").Inc()
	_ = msg.TermWithReason("dead-lettered")
}

// begin records in the snapshot that the update is being fanned out and
// says what to do with it.
func (f *fanout) begin(ctx context.Context, ev *incident.Event, streamSeq uint64) (fanoutAction, string, error) {
	var action fanoutAction
	var holder string
	now := f.d.cfg.Now().UTC()
	_, err := f.d.snaps.update(ctx, ev.IncidentID, func(s *Snapshot) error {
		if u := s.update(ev.Sequence); u != nil {
			switch {
			case u.EventID != ev.ID:
				action, holder = actionConflict, u.EventID
			case u.State == stateFanningOut:
				action = actionResume
			default:
				action = actionDuplicate
			}
			return errNoChange
		}
		st := UpdateState{Sequence: ev.Sequence, EventID: ev.ID, StreamSeq: streamSeq, State: stateFanningOut, At: now}
		action = actionNew
		if !ev.ShouldNotify() {
			st.State, action = stateQuiet, actionQuiet
			applyLatest(s, ev, now)
		}
		s.Updates = append(s.Updates, st)
		trimUpdates(s)
		return nil
	})
	return action, holder, err
}

// finish marks the update fanned out.
func (f *fanout) finish(ctx context.Context, ev *incident.Event, targets int) error {
	now := f.d.cfg.Now().UTC()
	_, err := f.d.snaps.update(ctx, ev.IncidentID, func(s *Snapshot) error {
		u := s.update(ev.Sequence)
		if u == nil {
			s.Updates = append(s.Updates, UpdateState{Sequence: ev.Sequence, EventID: ev.ID})
			u = &s.Updates[len(s.Updates)-1]
		}
		u.State, u.Targets, u.At = stateDone, targets, now
		applyLatest(s, ev, now)
		trimUpdates(s)
		return nil
	})
	return err
}

// applyLatest makes ev the snapshot's current state if it is the newest.
func applyLatest(s *Snapshot, ev *incident.Event, now time.Time) {
	s.UpdatedAt = now
	if ev.Sequence < s.LatestSeq {
		return
	}
	s.LatestSeq, s.Status, s.Priority = ev.Sequence, ev.Status, ev.Priority
	s.Title, s.Components = ev.Title.String(), ev.Components
}

// trimUpdates bounds a snapshot's history; the oldest updates go first.
func trimUpdates(s *Snapshot) {
	const keep = 500
	if len(s.Updates) > keep {
		s.Updates = append([]UpdateState(nil), s.Updates[len(s.Updates)-keep:]...)
	}
}

// publish sends one job per target with asynchronous, pipelined publishes
// and waits until JetStream acknowledged every one. Each job's Nats-Msg-Id
// is its delivery id, so publishing the same update again inside the
// duplicate window stores nothing new.
func (f *fanout) publish(ctx context.Context, ev *incident.Event, streamSeq uint64, prio incident.Priority, targets []subscribers.Target, recheck bool) (int, error) {
	enc, err := newJobEncoder(ev, streamSeq, prio)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	f.failed = nil
	f.mu.Unlock()
	const slabSize = 256 << 10
	var slab []byte
	stall := jetstream.WithStallWait(5 * time.Second)
	for i, t := range targets {
		if i%1024 == 0 && ctx.Err() != nil {
			return i, ctx.Err()
		}
		id := DeliveryID(ev.ID, t.SubscriberID, t.EndpointID)
		if cap(slab)-len(slab) < 1024 {
			slab = make([]byte, 0, slabSize)
		}
		at := len(slab)
		slab = enc.encode(slab, id, t)
		m := &nats.Msg{Subject: f.subjects[t.Channel], Data: slab[at:len(slab):len(slab)], Header: nats.Header{hdrMsgID: []string{id}}}
		if recheck {
			m.Header[hdrRecheck] = []string{"1"}
		}
		for {
			_, err := f.js.PublishMsgAsync(m, stall)
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				return i, err
			}
			if ctx.Err() != nil {
				return i, ctx.Err()
			}
		}
	}
	select {
	case <-f.js.PublishAsyncComplete():
	case <-ctx.Done():
		return len(targets), ctx.Err()
	}
	f.mu.Lock()
	failed := f.failed
	f.failed = nil
	f.mu.Unlock()
	// Publishes that failed (timeouts, a leader change) are retried one by
	// one; dedupe by Nats-Msg-Id makes a retry of a stored job harmless.
	for _, m := range failed {
		if err := retryTransient(ctx, func() error {
			_, err := f.js.PublishMsg(ctx, m)
			return err
		}); err != nil {
			return len(targets), fmt.Errorf("publish job: %w", err)
		}
	}
	counts := map[string]int{}
	for _, t := range targets {
		counts[t.Channel]++
	}
	for ch, n := range counts {
		f.d.metrics.jobs.WithLabelValues(ch).Add(float64(n))
	}
	return len(targets), nil
}

// keepAlive tells JetStream the message is still being worked on, every
// period, until the returned function is called.
func keepAlive(msg jetstream.Msg, every time.Duration) (stop func()) {
	if every <= 0 {
		every = 10 * time.Second
	}
	// A timer, not a goroutine: most jobs finish long before it fires.
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		_ = msg.InProgress()
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
