package slack

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestThreadStores checks the compare-and-set contract on the KV store
// (a real embedded JetStream) and the in-memory one.
func TestThreadStores(t *testing.T) {
	t.Parallel()
	for name, newStore := range map[string]func(t *testing.T) ThreadStore{
		"kv":     func(t *testing.T) ThreadStore { return NewKVThreads(newBucket(t)) },
		"memory": func(*testing.T) ThreadStore { return NewMemoryThreads() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			ctx := t.Context()
			key := ThreadKey{IncidentID: "TSR-1610", ChannelID: channelID}
			th, rev, err := s.Load(ctx, key)
			if err != nil || rev != 0 || th.ParentTS != "" {
				t.Fatalf("empty store: %+v, %d, %v", th, rev, err)
			}
			want := Thread{ParentTS: "1746281460.000100", Sequence: 1, Status: "investigating", Posted: map[string]string{"dlv_1": "1746281460.000100"},
				Updated: time.Date(2025, 5, 3, 14, 11, 0, 0, time.UTC)}
			rev1, err := s.Store(ctx, key, want, 0)
			if err != nil || rev1 == 0 {
				t.Fatalf("create: %d, %v", rev1, err)
			}
			if _, err := s.Store(ctx, key, want, 0); !errors.Is(err, ErrConflict) {
				t.Errorf("second create: %v, want ErrConflict", err)
			}
			got, rev, err := s.Load(ctx, key)
			if err != nil || rev != rev1 || got.ParentTS != want.ParentTS || got.Posted["dlv_1"] != want.Posted["dlv_1"] || !got.Updated.Equal(want.Updated) {
				t.Fatalf("load: %+v, %d, %v", got, rev, err)
			}
			// The loaded record is a copy.
			got.Posted["dlv_2"] = "x"
			if again, _, _ := s.Load(ctx, key); again.Posted["dlv_2"] != "" {
				t.Error("Load shares its map with the store")
			}
			got.Sequence = 2
			rev2, err := s.Store(ctx, key, got, rev1)
			if err != nil || rev2 <= rev1 {
				t.Fatalf("update: %d, %v", rev2, err)
			}
			if _, err := s.Store(ctx, key, got, rev1); !errors.Is(err, ErrConflict) {
				t.Errorf("stale update: %v, want ErrConflict", err)
			}
			// Keys are per incident and channel.
			for _, other := range []ThreadKey{{IncidentID: "TSR-1610", ChannelID: "C0OTHERCH"}, {IncidentID: "TSR-1611", ChannelID: channelID}} {
				if th, rev, err := s.Load(ctx, other); err != nil || rev != 0 || th.ParentTS != "" {
					t.Errorf("%+v: %+v, %d, %v", other, th, rev, err)
				}
			}
		})
	}
}

// TestKVKeys: any incident id and channel give a valid, distinct key.
func TestKVKeys(t *testing.T) {
	t.Parallel()
	kv := newBucket(t)
	s := NewKVThreads(kv)
	ids := []string{"TSR-1610", "INC-2f9cd51f", "incident with spaces", "é/ü*>.", "", strings.Repeat("x", 5000), "a.b", "a\x00b"}
	seen := map[string]bool{}
	for _, id := range ids {
		for _, ch := range []string{channelID, "not a channel", ""} {
			key := ThreadKey{IncidentID: id, ChannelID: ch}
			k := s.Key(key)
			if seen[k] {
				t.Errorf("key %q given twice", k)
			}
			seen[k] = true
			if _, err := s.Store(t.Context(), key, Thread{ParentTS: "1.1"}, 0); err != nil {
				t.Errorf("%q in %q: %v", id, ch, err)
				continue
			}
			th, _, err := s.Load(t.Context(), key)
			if err != nil || th.IncidentID != id || th.ChannelID != ch {
				t.Errorf("%q in %q: %+v, %v", id, ch, th, err)
			}
		}
	}
}

// TestKVDeletedAndCorruptRecords: a deleted record starts afresh; a
// corrupt one is reported, and deleting it recovers.
func TestKVDeletedAndCorruptRecords(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kv := newBucket(t)
	s := NewKVThreads(kv)
	key := ThreadKey{IncidentID: "TSR-1610", ChannelID: channelID}
	if _, err := s.Store(ctx, key, Thread{ParentTS: "1.1"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, s.Key(key)); err != nil {
		t.Fatal(err)
	}
	if th, rev, err := s.Load(ctx, key); err != nil || rev != 0 || th.ParentTS != "" {
		t.Fatalf("deleted: %+v, %d, %v", th, rev, err)
	}
	if _, err := s.Store(ctx, key, Thread{ParentTS: "2.2"}, 0); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	if _, err := kv.Put(ctx, s.Key(key), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(ctx, key); !errors.Is(err, ErrCorruptThread) {
		t.Errorf("corrupt: %v, want ErrCorruptThread", err)
	}
	if err := kv.Purge(ctx, s.Key(key)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(ctx, key); err != nil {
		t.Errorf("after purge: %v", err)
	}
}

// TestKVUnavailable: a store that cannot be reached is an error, not an
// empty record (which would post a second parent).
func TestKVUnavailable(t *testing.T) {
	t.Parallel()
	kv := newBucket(t)
	s := NewKVThreads(kv)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, rev, err := s.Load(ctx, ThreadKey{IncidentID: "TSR-1610", ChannelID: channelID}); err == nil || rev != 0 {
		t.Errorf("Load with a dead context: %d, %v", rev, err)
	}
	if _, err := s.Store(ctx, ThreadKey{IncidentID: "TSR-1610", ChannelID: channelID}, Thread{}, 0); err == nil || errors.Is(err, ErrConflict) {
		t.Errorf("Store with a dead context: %v", err)
	}
}

func TestThreadsBucketConfig(t *testing.T) {
	t.Parallel()
	cfg := ThreadsBucketConfig()
	if cfg.Bucket != "slack_threads" || cfg.History != 1 || cfg.TTL != ThreadsTTL || cfg.Storage != jetstream.FileStorage {
		t.Errorf("config %+v", cfg)
	}
}
