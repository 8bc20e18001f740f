package slack

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"
)

// ErrConflict is returned by [ThreadStore.Store] when the record changed
// since it was loaded (compare-and-set failed).
var ErrConflict = errors.New("slack thread record changed concurrently")

// ThreadKey identifies one incident's thread in one Slack channel.
type ThreadKey struct {
	// IncidentID is the incident ("TSR-1610").
	IncidentID string
	// ChannelID is the Slack channel id ("C0123ABCD").
	ChannelID string
}

// Thread is what Herald remembers of one incident's living message in one
// Slack channel.
type Thread struct {
	// IncidentID and ChannelID repeat the key, for people reading the
	// store.
	IncidentID string `json:"incident_id"`
	ChannelID  string `json:"channel_id"`
	// ParentTS is the ts of the parent message; empty until it is posted
	// (or after it was found deleted).
	ParentTS string `json:"parent_ts,omitempty"`
	// Sequence, Status and Closed describe the update the parent shows.
	Sequence int64  `json:"sequence,omitempty"`
	Status   string `json:"status,omitempty"`
	Closed   bool   `json:"closed,omitempty"`
	// Posted maps delivery ids to the ts of the message each delivery
	// posted: its thread reply, or the parent for the delivery that
	// started the thread. A delivery found here is never posted again.
	Posted map[string]string `json:"posted,omitempty"`
	// Lease is the send holding the thread (a random id), empty when
	// none does; LeaseDelivery names its delivery, LeaseUntil when the
	// lease expires unless renewed. Only an expired lease is taken over.
	Lease         string    `json:"lease,omitempty"`
	LeaseDelivery string    `json:"lease_delivery,omitempty"`
	LeaseUntil    time.Time `json:"lease_until,omitzero"`
	// Updated is when the record was last written.
	Updated time.Time `json:"updated,omitzero"`
}

// clone returns a copy of t that shares no map with it.
func (t Thread) clone() Thread {
	t.Posted = maps.Clone(t.Posted)
	return t
}

// ThreadStore keeps the thread records of bot mode. Implementations must
// be safe for concurrent use, and shared by every Herald process that
// sends to Slack ([KVThreads]).
type ThreadStore interface {
	// Load returns the record of key and its revision, or the zero
	// Thread and revision 0 when there is none.
	Load(ctx context.Context, key ThreadKey) (Thread, uint64, error)
	// Store writes t as the record of key if its revision is still rev
	// (0: if there is no record), and returns the new revision. It
	// returns an error wrapping [ErrConflict] when the record changed
	// meanwhile.
	Store(ctx context.Context, key ThreadKey, t Thread, rev uint64) (uint64, error)
}

// MemoryThreads is a [ThreadStore] in memory: for a single process and
// tests. Its records are lost when the process ends, and with them the
// threads: use [KVThreads] in production.
type MemoryThreads struct {
	mu  sync.Mutex
	m   map[ThreadKey]memoryRecord
	rev uint64
}

type memoryRecord struct {
	t   Thread
	rev uint64
}

// NewMemoryThreads returns an empty in-memory store.
func NewMemoryThreads() *MemoryThreads {
	return &MemoryThreads{m: make(map[ThreadKey]memoryRecord)}
}

// Load implements [ThreadStore].
func (s *MemoryThreads) Load(ctx context.Context, key ThreadKey) (Thread, uint64, error) {
	if err := ctx.Err(); err != nil {
		return Thread{}, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.m[key]
	return r.t.clone(), r.rev, nil
}

// Store implements [ThreadStore].
func (s *MemoryThreads) Store(ctx context.Context, key ThreadKey, t Thread, rev uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[key].rev != rev {
		return 0, ErrConflict
	}
	s.rev++
	s.m[key] = memoryRecord{t: t.clone(), rev: s.rev}
	return s.rev, nil
}
