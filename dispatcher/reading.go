package dispatcher

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// errStopReading lets a reading's callback end it early, without error.
var errStopReading = errors.New("stop reading")

// errLostMessages is returned by a reading whose consumer skipped
// messages on the way (a plain consumer has no ordered consumer's
// recovery): the reading must start again.
var errLostMessages = errors.New("the reading lost messages on the way; try again")

// readStored hands each message cons delivers to each, with its
// metadata, in batches of ledgerBatch, until nothing is pending, each
// returns errStopReading (no error), another error (returned), or ctx
// ends. With gapless, a skipped consumer sequence fails the reading
// (errLostMessages).
func readStored(ctx context.Context, cons jetstream.Consumer, gapless bool, each func(jetstream.Msg, *jetstream.MsgMetadata) error) error {
	var consSeq uint64
	for {
		batch, err := cons.FetchNoWait(ledgerBatch)
		if err != nil {
			return err
		}
		got, pending := 0, uint64(1)
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			if gapless {
				if md.Sequence.Consumer != consSeq+1 {
					return errLostMessages
				}
				consSeq = md.Sequence.Consumer
			}
			pending = md.NumPending
			if err := each(msg, md); errors.Is(err, errStopReading) {
				return nil
			} else if err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return err
		}
		if got == 0 || pending == 0 {
			return ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading: %w", err)
		}
	}
}
