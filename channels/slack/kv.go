package slack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ThreadsBucket is the name of the JetStream key-value bucket that holds
// the thread records of bot mode.
const ThreadsBucket = "slack_threads"

// ThreadsTTL is how long a thread record is kept after its last write:
// an incident updated again after that starts a new parent message.
const ThreadsTTL = 90 * 24 * time.Hour

// maxRecordBytes bounds a thread record read from the store.
const maxRecordBytes = 256 << 10

// ErrCorruptThread is wrapped by [KVThreads.Load] when a record does not
// decode. Deleting the key starts the incident's thread afresh.
var ErrCorruptThread = errors.New("corrupt slack thread record")

// ThreadsBucketConfig returns the configuration of the [ThreadsBucket]
// bucket: one revision per key (compare-and-set needs no history), records
// expiring [ThreadsTTL] after their last write, file storage. Set Replicas
// to 3 on a JetStream cluster.
func ThreadsBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      ThreadsBucket,
		Description: "Herald: Slack thread per incident and channel (parent ts, posted replies)",
		History:     1,
		TTL:         ThreadsTTL,
		Storage:     jetstream.FileStorage,
	}
}

// KVThreads is a [ThreadStore] over a JetStream key-value bucket (see
// [ThreadsBucketConfig]), shared by every Herald process.
//
// Keys are "<40 hex digits of SHA-256 of the incident id>.<channel id>":
// incident ids may hold characters keys do not allow, channel ids never do
// (others are hashed too). Values are the [Thread] as JSON.
type KVThreads struct {
	kv jetstream.KeyValue
}

var _ ThreadStore = (*KVThreads)(nil)

// NewKVThreads returns a store over kv.
func NewKVThreads(kv jetstream.KeyValue) *KVThreads { return &KVThreads{kv: kv} }

// Key returns the bucket key of key.
func (s *KVThreads) Key(key ThreadKey) string { return kvKey(key) }

func kvKey(key ThreadKey) string {
	inc := sha256.Sum256([]byte(key.IncidentID))
	ch := key.ChannelID
	if !IsChannelID(ch) {
		sum := sha256.Sum256([]byte(ch))
		ch = "x" + hex.EncodeToString(sum[:16])
	}
	return hex.EncodeToString(inc[:20]) + "." + ch
}

// Load implements [ThreadStore].
func (s *KVThreads) Load(ctx context.Context, key ThreadKey) (Thread, uint64, error) {
	e, err := s.kv.Get(ctx, kvKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Thread{}, 0, nil
	}
	if err != nil {
		return Thread{}, 0, fmt.Errorf("slack threads: load: %w", err)
	}
	t, err := decodeThread(e.Value())
	if err != nil {
		return Thread{}, 0, err
	}
	return t, e.Revision(), nil
}

// decodeThread decodes a stored record.
func decodeThread(b []byte) (Thread, error) {
	var t Thread
	if len(b) > maxRecordBytes {
		return Thread{}, fmt.Errorf("%w: %d bytes", ErrCorruptThread, len(b))
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return Thread{}, fmt.Errorf("%w: not JSON", ErrCorruptThread)
	}
	return t, nil
}

// Store implements [ThreadStore].
func (s *KVThreads) Store(ctx context.Context, key ThreadKey, t Thread, rev uint64) (uint64, error) {
	t.IncidentID, t.ChannelID = key.IncidentID, key.ChannelID
	b, err := json.Marshal(t)
	if err != nil {
		return 0, fmt.Errorf("slack threads: encode: %w", err)
	}
	k := kvKey(key)
	var n uint64
	if rev == 0 {
		n, err = s.kv.Create(ctx, k, b)
	} else {
		n, err = s.kv.Update(ctx, k, b, rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, fmt.Errorf("%w (revision %d)", ErrConflict, rev)
	case err != nil:
		return 0, fmt.Errorf("slack threads: store: %w", err)
	}
	return n, nil
}
