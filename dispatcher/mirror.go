package dispatcher

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// mirror watches a KV bucket until ctx ends and hands every entry to apply:
// the stored ones first, then every change. ready is closed once the stored
// entries are applied. A watch that fails or stops is started again (and
// replays the bucket) after a second.
func mirror(ctx context.Context, kv jetstream.KeyValue, name string, logger *slog.Logger, ready chan struct{}, apply func(jetstream.KeyValueEntry), opts ...jetstream.WatchOpt) error {
	first := true
	for {
		w, err := kv.WatchAll(ctx, opts...)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			logger.Warn(name+" watch failed, retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.Updates() {
			if e == nil {
				if first {
					close(ready)
					first = false
				}
				continue
			}
			apply(e)
		}
		_ = w.Stop()
		if ctx.Err() != nil {
			return nil
		}
	}
}
