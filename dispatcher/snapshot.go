package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/incident"
)

// Snapshot is the state of one incident as Herald knows it, kept in the
// "incidents" KV bucket: its latest update, and the recent updates with
// their fan-out. It is what stops an update re-published after the
// duplicate window from notifying twice (however old: every update whose
// sequence is not above the latest one is sent nothing), and what tells
// "latest only" channels that an update was superseded.
type Snapshot struct {
	IncidentID string `json:"incident_id"`
	// LatestSeq and LatestEventID are the incident's latest update, as
	// sequenced by the status page.
	LatestSeq     int64             `json:"latest_sequence"`
	LatestEventID string            `json:"latest_event_id,omitempty"`
	Status        incident.Status   `json:"status"`
	Priority      incident.Priority `json:"priority,omitempty"`
	Title         string            `json:"title"`
	Components    []string          `json:"components"`
	UpdatedAt     time.Time         `json:"updated_at"`
	// Updates are the most recent updates (at most maxSnapshotUpdates),
	// oldest first: for the operator, and for the fan-out of the latest.
	Updates []UpdateState `json:"updates"`
	// Maintenance is the state of a scheduled maintenance (its window,
	// the update whose reminders stand, the windows it moved; see
	// maintenance.go); nil for an incident.
	Maintenance *Maintenance `json:"maintenance,omitempty"`
}

// maxSnapshotUpdates bounds the updates a snapshot lists. The fan-out's
// decisions need only the latest one.
const maxSnapshotUpdates = 100

// Update states in a snapshot.
const (
	stateFanningOut = "fanning_out"
	stateDone       = "done"
	stateQuiet      = "quiet"
	// stateLate: the update came after a later one of its incident; it
	// was recorded and sent to nobody.
	stateLate = "late"
)

// UpdateState records the fan-out of one update.
type UpdateState struct {
	Sequence  int64  `json:"sequence"`
	EventID   string `json:"event_id"`
	StreamSeq uint64 `json:"stream_seq"`
	State     string `json:"state"`
	Targets   int    `json:"targets"`
	// ChannelTargets is the number of targets of each channel, known
	// when the fan-out begins (progress.go).
	ChannelTargets map[string]int `json:"channel_targets,omitempty"`
	// Batches is the number of batches of each channel, fixed when the
	// fan-out begins: a resumed fan-out puts every target in the same
	// batch (same id) as the first one did.
	Batches map[string]int `json:"batches,omitempty"`
	At      time.Time      `json:"at"`
}

// update returns the state of sequence seq, or nil.
func (s *Snapshot) update(seq int64) *UpdateState {
	for i := len(s.Updates) - 1; i >= 0; i-- {
		if s.Updates[i].Sequence == seq {
			return &s.Updates[i]
		}
	}
	return nil
}

// latestEventID returns the event id of the latest update (snapshots of
// the first round name it only in their update list).
func (s *Snapshot) latestEventID() string {
	if s.LatestEventID != "" {
		return s.LatestEventID
	}
	if u := s.update(s.LatestSeq); u != nil {
		return u.EventID
	}
	return ""
}

// add appends u to the recent updates, dropping the oldest beyond
// maxSnapshotUpdates.
func (s *Snapshot) add(u UpdateState) {
	s.Updates = append(s.Updates, u)
	if n := len(s.Updates) - maxSnapshotUpdates; n > 0 {
		s.Updates = append([]UpdateState(nil), s.Updates[n:]...)
	}
}

// snapshots reads and writes incident snapshots, and mirrors each
// incident's latest sequence in memory through a KV watch.
type snapshots struct {
	kv     jetstream.KeyValue
	logger *slog.Logger

	mu     sync.RWMutex
	latest map[string]int64
	ready  chan struct{}
}

func newSnapshots(kv jetstream.KeyValue, logger *slog.Logger) *snapshots {
	return &snapshots{kv: kv, logger: logger, latest: map[string]int64{}, ready: make(chan struct{})}
}

// get returns the snapshot of id (nil when there is none) and its revision.
func (s *snapshots) get(ctx context.Context, id string) (*Snapshot, uint64, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var snap Snapshot
	if err := json.Unmarshal(e.Value(), &snap); err != nil {
		return nil, 0, fmt.Errorf("snapshot %s: %w", id, err)
	}
	return &snap, e.Revision(), nil
}

// errNoChange lets an update function leave the snapshot as it is.
var errNoChange = errors.New("no change")

// update applies fn to the snapshot of id (a new one when absent) and stores
// it with compare-and-swap, retrying on concurrent changes. fn returning
// errNoChange skips the write.
func (s *snapshots) update(ctx context.Context, id string, fn func(*Snapshot) error) (*Snapshot, error) {
	for range 20 {
		snap, rev, err := s.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if snap == nil {
			snap = &Snapshot{IncidentID: id}
		}
		if err := fn(snap); err != nil {
			if errors.Is(err, errNoChange) {
				return snap, nil
			}
			return nil, err
		}
		data, err := json.Marshal(snap)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, id, data)
		} else {
			_, err = s.kv.Update(ctx, id, data, rev)
		}
		if err == nil {
			s.observe(id, snap.LatestSeq)
			return snap, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return nil, fmt.Errorf("snapshot %s: %w", id, err)
		}
	}
	return nil, fmt.Errorf("snapshot %s: too many concurrent changes", id)
}

// observe records a latest sequence seen for id.
func (s *snapshots) observe(id string, seq int64) {
	s.mu.Lock()
	if seq > s.latest[id] {
		s.latest[id] = seq
	}
	s.mu.Unlock()
}

// latestSeq returns the latest sequence of id fanned out or recorded, as
// far as this process knows.
func (s *snapshots) latestSeq(id string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.latest[id]
}

// watch mirrors the latest sequence of every incident until ctx ends.
func (s *snapshots) watch(ctx context.Context) error {
	return mirror(ctx, s.kv, "incident snapshot", s.logger, s.ready, func(e jetstream.KeyValueEntry) {
		var snap struct {
			LatestSeq int64 `json:"latest_sequence"`
		}
		if json.Unmarshal(e.Value(), &snap) == nil {
			s.observe(e.Key(), snap.LatestSeq)
		}
	}, jetstream.IgnoreDeletes())
}
