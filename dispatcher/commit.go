package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// errNotPublished marks a write whose asynchronous publish was refused at
// once (too many pending): the commit publishes it again.
var errNotPublished = errors.New("not published")

// stallAfter is how long a write may wait for its acknowledgement before
// the commit takes JetStream for stalled: sends wait (see writeGate) until
// writes are acknowledged again.
const stallAfter = 2 * time.Second

// maxCommitRetry caps the wait between two rounds of a commit's failed
// writes: when JetStream returns, the records of sends made just before it
// went must land before copies of their jobs, redelivered, look for them.
const maxCommitRetry = time.Second

// commit acknowledges a job once every target is over: it waits for the
// job's writes (records, parked copies, dead letters; group commit), gives
// its leases back, then acks it, or returns it to the stream when a target
// was handed back. Writes that failed are published again, all together,
// round after round, without limit, while the job stays in hand
// (InProgress) and its leases are renewed: a job is never acknowledged
// before its records are stored. Only when ctx ends (Herald stops and its
// grace is over) does the commit give up; the job is then left
// unacknowledged, and the records that could not be written are counted as
// lost.
func (dl *deliverer) commit(ctx context.Context, m *inHand) {
	defer dl.held.Done()
	defer m.release()
	stalled := false
	defer func() {
		if stalled {
			dl.d.stallEnds()
		}
	}()
	pending := m.writes
	for round := 1; ; round++ {
		var failed []write
		var lastErr error
		for _, w := range pending {
			if err := dl.await(w, &stalled); err != nil {
				failed, lastErr = append(failed, w), err
			}
		}
		if len(failed) == 0 {
			break
		}
		dl.infraTrouble(componentOf(failed[0]), fmt.Errorf("%d of %d writes of a job: %w", len(failed), len(m.writes), lastErr))
		if !stalled {
			stalled = true
			dl.d.stallBegins()
		}
		select {
		case <-ctx.Done():
			dl.abandon(m, failed)
			return
		case <-time.After(min(transientDelay(round), maxCommitRetry)):
		}
		for i := range failed {
			dl.publishWrite(&failed[i])
		}
		pending = failed
	}
	m.stopKeepAlive()
	for _, ls := range m.leases {
		dl.releaseLease(ls)
	}
	if m.back {
		if err := m.msg.NakWithDelay(handBackDelay); err != nil {
			dl.logger.Debug("handing a job back failed; it returns after the ack wait", "err", err)
		}
		return
	}
	if err := m.msg.Ack(); err != nil {
		dl.logger.Debug("ack lost; a redelivery will find the records and stop", "err", err)
	}
}

// await waits for a write's acknowledgement. A write still unacknowledged
// after stallAfter marks JetStream stalled (*stalled, counted in the
// dispatcher's stalls) until the job's writes are all stored.
func (dl *deliverer) await(w write, stalled *bool) error {
	if w.fut == nil {
		return errNotPublished
	}
	select {
	case <-w.fut.Ok():
		dl.d.health.ok(componentOf(w))
		return nil
	case err := <-w.fut.Err():
		return err
	default:
	}
	timer := time.NewTimer(stallAfter)
	defer timer.Stop()
	select {
	case <-w.fut.Ok():
		dl.d.health.ok(componentOf(w))
		return nil
	case err := <-w.fut.Err():
		return err
	case <-timer.C:
	}
	if !*stalled {
		*stalled = true
		dl.d.stallBegins()
		dl.d.health.fail(componentOf(w), errStalled)
	}
	select {
	case <-w.fut.Ok():
		dl.d.health.ok(componentOf(w))
		return nil
	case err := <-w.fut.Err():
		return err
	}
}

// errStalled reports writes JetStream has not acknowledged for a while.
var errStalled = fmt.Errorf("writes unacknowledged for %s", stallAfter)

// publishWrite stores w's message asynchronously, a record in the
// delivery log, anything else (parked copies, dead letters) through the
// loop's own context; a publish refused at once leaves w.fut nil, for the
// commit to try again.
func (dl *deliverer) publishWrite(w *write) {
	if w.record {
		w.fut, _ = dl.d.log.publish(w.msg)
	} else {
		w.fut, _ = dl.pub.PublishMsgAsync(w.msg, jetstream.WithStallWait(logAckTimeout))
	}
}

// componentOf names the component a write goes to.
func componentOf(w write) string {
	if w.record {
		return componentDeliveryLog
	}
	return componentDeliveries
}

// abandon leaves a job whose failed writes could not be stored before
// Herald stopped: unacknowledged, it comes back after the ack wait.
func (dl *deliverer) abandon(m *inHand, failed []write) {
	m.stopKeepAlive()
	lost := 0
	for _, w := range failed {
		if w.record {
			lost++
		}
	}
	dl.metrics.lost.Add(float64(lost))
	dl.logger.Error("stopping with writes not stored: the job is left unacknowledged and comes back", "records_lost", lost, "writes", len(failed))
}

// renewLeases extends the leases of a job still in hand (a slow send, a
// commit waiting for the delivery log), so that no copy sends meanwhile;
// the job's keep-alive calls it every third of the ack wait. The renewals
// of a batch (up to a lease per target) are written together and waited
// for within leaseRenewWait in all, so a slow bucket delays neither the
// job's next keep-alive nor the other renewals by a wait per lease.
func (dl *deliverer) renewLeases(m *inHand) {
	m.mu.Lock()
	held := append([]lease(nil), m.leases...)
	m.mu.Unlock()
	futs := make([]jetstream.PubAckFuture, len(held))
	for i := range held {
		f, err := dl.d.leases.renewAsync(held[i])
		if err != nil {
			dl.d.health.fail(componentLeases, fmt.Errorf("lease %s: %w", held[i].key, err))
			continue
		}
		futs[i] = f
	}
	deadline := time.NewTimer(leaseRenewWait)
	defer deadline.Stop()
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			held[i].rev = ack.Sequence
		case err := <-f.Err():
			dl.d.health.fail(componentLeases, fmt.Errorf("lease %s: %w", held[i].key, err))
			continue
		case <-deadline.C:
			dl.d.health.fail(componentLeases, fmt.Errorf("lease renewals unanswered after %v", leaseRenewWait))
			return
		}
		m.mu.Lock()
		for j := range m.leases {
			if m.leases[j].key == held[i].key {
				m.leases[j].rev = held[i].rev
			}
		}
		m.mu.Unlock()
	}
}

// releaseLease gives a lease back without waiting for the answer: a lease
// not given back expires after its TTL.
func (dl *deliverer) releaseLease(ls lease) {
	_, _ = dl.pub.PublishMsgAsync(releaseMsg(ls))
}

// leaseRenewWait bounds the wait for the renewals of one job's leases.
const leaseRenewWait = 2 * time.Second
