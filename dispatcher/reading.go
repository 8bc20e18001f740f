package dispatcher

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// errStopReading lets a reading's callback end it early, without error.
var errStopReading = errors.New("stop reading")

// errLostMessages is returned by a reading whose consumer skipped
// messages on the way (a plain consumer has no ordered consumer's
// recovery): the reading must start again.
var errLostMessages = errors.New("the reading lost messages on the way; try again")

// readStored hands each message cons delivers to each, with its metadata,
// until nothing is pending (see readOrdered: a reader just created on a
// clustered stream is given time to deliver), each returns errStopReading
// (no error) or another error (returned), or ctx ends. With gapless, a
// skipped consumer sequence fails the reading (errLostMessages).
func readStored(ctx context.Context, cons jetstream.Consumer, gapless bool, each func(jetstream.Msg, *jetstream.MsgMetadata) error) error {
	var consSeq uint64
	var failed error
	err := readOrdered(cons, func(msg jetstream.Msg, md *jetstream.MsgMetadata) bool {
		if gapless {
			if md.Sequence.Consumer != consSeq+1 {
				failed = errLostMessages
				return false
			}
			consSeq = md.Sequence.Consumer
		}
		if err := each(msg, md); err != nil {
			if !errors.Is(err, errStopReading) {
				failed = err
			}
			return false
		}
		if err := ctx.Err(); err != nil {
			failed = err
			return false
		}
		return true
	})
	if failed != nil {
		return failed
	}
	return err
}
