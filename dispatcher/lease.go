package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// leases give one process at a time the right to check and send a
// delivery, across every Herald process sharing the cluster. Copies of a
// delivery can be in flight at once (a parked copy and a redelivered batch,
// a replay, a fan-out resumed past the duplicate window); each copy takes
// the lease of the delivery id before it reads the delivery log and sends,
// and gives it back once its record is stored. A copy that finds the lease
// taken waits and looks again, by which time the log tells it the delivery
// is done. A lease whose holder died expires after its TTL. Fresh first
// deliveries, which no copy can meet, do not take one (see inHand.seen).
type leases struct {
	kv     jetstream.KeyValue
	js     jetstream.JetStream
	ttl    time.Duration
	holder []byte
}

// lease is a lease held: its key and revision.
type lease struct {
	key string
	rev uint64
}

func newLeases(kv jetstream.KeyValue, js jetstream.JetStream, ttl time.Duration, holder string) *leases {
	return &leases{kv: kv, js: js, ttl: ttl, holder: []byte(holder)}
}

// acquire takes the lease of delivery id. It reports false, with no error,
// when another copy holds it.
func (l *leases) acquire(ctx context.Context, id string) (lease, bool, error) {
	rev, err := l.kv.Create(ctx, id, l.holder, jetstream.KeyTTL(l.ttl))
	switch {
	case err == nil:
		return lease{key: id, rev: rev}, true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return lease{}, false, nil
	}
	return lease{}, false, fmt.Errorf("lease %s: %w", id, err)
}

// renewAsync writes the extension of lease ls for another TTL, unless
// another holder took it since (the expected revision), on the leases' own
// JetStream context: renewals never queue behind the deliverers' writes.
func (l *leases) renewAsync(ls lease) (jetstream.PubAckFuture, error) {
	m := &nats.Msg{Subject: "$KV." + BucketLeases + "." + ls.key, Data: l.holder}
	return l.js.PublishMsgAsync(m, jetstream.WithExpectLastSequencePerSubject(ls.rev), jetstream.WithMsgTTL(l.ttl))
}

// releaseMsg is the message that gives a lease back, unless it expired
// and another copy took it since (the expected revision then fails): a
// purge whose marker lives a second, so that the next copy's acquire is
// usually a single write.
func releaseMsg(ls lease) *nats.Msg {
	m := nats.NewMsg("$KV." + BucketLeases + "." + ls.key)
	m.Header.Set("KV-Operation", "PURGE")
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(ls.rev, 10))
	m.Header.Set(jetstream.MsgTTLHeader, "1s")
	return m
}
