package dispatcher

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// errNotPublished marks a write whose asynchronous publish was refused at
// once (too many pending): the commit publishes it again.
var errNotPublished = errors.New("not published")

// commit acknowledges a job once every target is over: it waits for the
// job's writes (records, parked copies, dead letters; group commit), gives
// its leases back, then acks it, or returns it to the stream when a target
// was handed back. A write that failed is tried again, without limit,
// while the job stays in hand (InProgress) and its leases are renewed: a
// job is never acknowledged before its records are stored. Only when ctx
// ends (Herald stops and its grace is over) does the commit give up; the
// job is then left unacknowledged, and the records that could not be
// written are counted as lost.
func (dl *deliverer) commit(ctx context.Context, m *inHand) {
	defer dl.held.Done()
	defer m.release()
	for i := range m.writes {
		w := &m.writes[i]
		for try := 1; ; try++ {
			err := errNotPublished
			if w.fut != nil {
				select {
				case <-w.fut.Ok():
					err = nil
				case err = <-w.fut.Err():
				}
			}
			component := componentDeliveries
			if w.record {
				component = componentDeliveryLog
			}
			if err == nil {
				dl.d.health.ok(component)
				break
			}
			dl.infraTrouble(component, err)
			select {
			case <-ctx.Done():
				dl.abandon(m, i)
				return
			case <-time.After(transientDelay(try)):
			}
			js := dl.pub
			if w.record {
				js = dl.d.log.js
			}
			w.fut, _ = js.PublishMsgAsync(w.msg, jetstream.WithStallWait(logAckTimeout))
		}
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

// abandon leaves a job whose writes from the i-th on could not be stored
// before Herald stopped: unacknowledged, it comes back after the ack wait.
func (dl *deliverer) abandon(m *inHand, i int) {
	m.stopKeepAlive()
	lost := 0
	for _, w := range m.writes[i:] {
		if w.record {
			lost++
		}
	}
	dl.metrics.lost.Add(float64(lost))
	dl.logger.Error("stopping with writes not stored: the job is left unacknowledged and comes back", "records_lost", lost, "writes", len(m.writes)-i)
}

// renewLeases extends the leases of a job still in hand (a slow send, a
// commit waiting for the delivery log), so that no copy sends meanwhile;
// the job's keep-alive calls it every third of the ack wait.
func (dl *deliverer) renewLeases(ctx context.Context, m *inHand) {
	m.mu.Lock()
	held := append([]lease(nil), m.leases...)
	m.mu.Unlock()
	for i := range held {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := dl.d.leases.renew(rctx, &held[i])
		cancel()
		if err != nil {
			dl.d.health.fail(componentLeases, err)
			continue
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
