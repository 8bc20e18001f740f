package subscribers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/heraldhq/herald/incident"
	"github.com/nats-io/nats.go/jetstream"
)

// Query describes an incident update for audience resolution.
type Query struct {
	// Components are the update's component ids; empty means the whole
	// platform (every subscriber matches).
	Components []string
	// Priority is the update's priority; empty counts as P4 (callers that
	// rate unrated updates differently substitute their priority first).
	Priority incident.Priority
	// Status is the update's status.
	Status incident.Status
}

// Target is one endpoint an update goes to. Its strings are shared with
// the index.
type Target struct {
	SubscriberID string
	EndpointID   string
	Channel      string
}

// Index is the in-memory matching index of every subscriber's active
// endpoints. It is safe for concurrent use.
type Index struct {
	logger *slog.Logger

	mu      sync.RWMutex
	slots   map[string]int32
	entries []entry
	free    []int32
	bits    map[string]uint16 // component id -> bit number
	names   map[string]string // interned endpoint ids
	sorted  []string          // ids in order, for paging; nil when stale
	// lastAudience sizes the next audience's allocation.
	lastAudience atomic.Int64

	readyOnce sync.Once
	ready     chan struct{}
	observe   func(s *Subscriber, rev uint64, deleted bool)
}

// OnChange registers fn to see every subscriber [Index.Watch] applies (s
// is nil with deleted true for a removal), e.g. to prime [Store.Prime].
// Call it before Watch. fn must not modify s.
func (x *Index) OnChange(fn func(s *Subscriber, rev uint64, deleted bool)) { x.observe = fn }

// entry is one subscriber in the index; eps is nil in a free slot.
type entry struct {
	id  string
	rev uint64
	eps []matcher
}

// matcher is what matching needs of one active endpoint, with the
// subscriber's filters already folded in.
type matcher struct {
	id string
	// comps holds component bits 0..63; extra the bits above (rare: only
	// catalogs of more than 64 components need it).
	comps uint64
	extra *[]uint16
	// statuses is a mask of incident.Status indexes; 0 means all.
	statuses uint16
	// minRank is the least severe priority rank accepted; 0 means all.
	minRank uint8
	channel uint8
	flags   uint8
}

const (
	allComponents uint8 = 1 << iota
)

var channelNames = []string{channelEmail, channelSMS, channelSlack, channelWebhook}

// NewIndex returns an empty index; logger may be nil.
func NewIndex(logger *slog.Logger) *Index {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Index{
		logger: logger,
		slots:  make(map[string]int32),
		bits:   make(map[string]uint16),
		names:  make(map[string]string),
		ready:  make(chan struct{}),
	}
}

// Ready is closed once [Index.Watch] has loaded every stored subscriber.
func (x *Index) Ready() <-chan struct{} { return x.ready }

// Len returns the number of subscribers in the index.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.slots)
}

// Revision returns the KV revision of the indexed subscriber.
func (x *Index) Revision(id string) (uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i, ok := x.slots[id]
	if !ok {
		return 0, false
	}
	return x.entries[i].rev, true
}

// Upsert indexes s at KV revision rev, replacing an older revision. A
// revision older than the indexed one is ignored.
func (x *Index) Upsert(s *Subscriber, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.slots[s.ID]
	if ok && x.entries[i].rev > rev {
		return
	}
	eps := x.matchers(s)
	if ok {
		x.entries[i].rev, x.entries[i].eps = rev, eps
		return
	}
	id := s.ID
	if n := len(x.free); n > 0 {
		i = x.free[n-1]
		x.free = x.free[:n-1]
		x.entries[i] = entry{id: id, rev: rev, eps: eps}
	} else {
		i = int32(len(x.entries))
		x.entries = append(x.entries, entry{id: id, rev: rev, eps: eps})
	}
	x.slots[id] = i
	x.sorted = nil
}

// Remove drops a subscriber from the index.
func (x *Index) Remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.slots[id]
	if !ok {
		return
	}
	delete(x.slots, id)
	x.entries[i] = entry{}
	x.free = append(x.free, i)
	x.sorted = nil
}

// matchers folds the subscriber's filters into one matcher per active
// endpoint. Endpoints whose filters cannot match anything are left out.
// Called with x.mu held.
func (x *Index) matchers(s *Subscriber) []matcher {
	out := make([]matcher, 0, len(s.Endpoints))
	subRank := uint8(s.MinPriority.Rank())
	subStatuses := statusMask(s.Statuses)
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		if ep.Disabled != nil {
			continue
		}
		ch := slices.Index(channelNames, ep.Channel)
		if ch < 0 {
			continue
		}
		m := matcher{id: x.intern(ep.ID), channel: uint8(ch)}
		comps := s.Components
		switch {
		case len(comps) == 0 && len(ep.Components) == 0:
			m.flags |= allComponents
		case len(comps) == 0:
			comps = ep.Components
		case len(ep.Components) > 0:
			comps = intersect(comps, ep.Components)
			if len(comps) == 0 {
				continue
			}
		}
		if m.flags&allComponents == 0 {
			for _, c := range comps {
				b := x.bit(c)
				if b < 64 {
					m.comps |= 1 << b
				} else {
					if m.extra == nil {
						m.extra = new([]uint16)
					}
					*m.extra = append(*m.extra, b)
				}
			}
		}
		m.minRank = minNonZero(subRank, uint8(ep.MinPriority.Rank()))
		m.statuses = subStatuses
		if epStatuses := statusMask(ep.Statuses); epStatuses != 0 {
			if m.statuses != 0 {
				m.statuses &= epStatuses
				if m.statuses == 0 {
					continue
				}
			} else {
				m.statuses = epStatuses
			}
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil
	}
	return slices.Clip(out)
}

func (x *Index) intern(s string) string {
	if v, ok := x.names[s]; ok {
		return v
	}
	if len(x.names) < 1<<16 {
		x.names[s] = s
	}
	return s
}

func (x *Index) bit(component string) uint16 {
	if b, ok := x.bits[component]; ok {
		return b
	}
	b := uint16(len(x.bits))
	x.bits[component] = b
	return b
}

func intersect(a, b []string) []string {
	var out []string
	for _, v := range a {
		if slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}

func minNonZero(a, b uint8) uint8 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

func statusMask(sts []incident.Status) uint16 {
	var m uint16
	for _, s := range sts {
		if i := s.Index(); i >= 0 && i < 16 {
			m |= 1 << i
		}
	}
	return m
}

// Audience returns every active endpoint the update described by q goes
// to, in index order.
func (x *Index) Audience(q Query) []Target {
	rank := uint8(q.Priority.Rank())
	if rank == 0 {
		rank = 4
	}
	var status uint16
	if i := q.Status.Index(); i >= 0 && i < 16 {
		status = 1 << i
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	everyone := len(q.Components) == 0
	var qmask uint64
	var qextra []uint16
	for _, c := range q.Components {
		if b, ok := x.bits[c]; ok {
			if b < 64 {
				qmask |= 1 << b
			} else {
				qextra = append(qextra, b)
			}
		}
	}
	f := filter{rank: rank, status: status, everyone: everyone, mask: qmask, extra: qextra}
	hint := int(x.lastAudience.Load())
	out := f.scan(x.entries, make([]Target, 0, hint+hint/8+16))
	x.lastAudience.Store(int64(len(out)))
	return out
}

// filter is a compiled Query.
type filter struct {
	rank     uint8
	status   uint16
	everyone bool
	mask     uint64
	extra    []uint16
}

// scan appends the targets of entries to out.
func (f *filter) scan(entries []entry, out []Target) []Target {
	for i := range entries {
		e := &entries[i]
		for j := range e.eps {
			m := &e.eps[j]
			if m.minRank != 0 && f.rank > m.minRank {
				continue
			}
			if m.statuses != 0 && m.statuses&f.status == 0 {
				continue
			}
			if !f.everyone && m.flags&allComponents == 0 && m.comps&f.mask == 0 && !extraMatch(m.extra, f.extra) {
				continue
			}
			out = append(out, Target{SubscriberID: e.id, EndpointID: m.id, Channel: channelNames[m.channel]})
		}
	}
	return out
}

func extraMatch(have *[]uint16, want []uint16) bool {
	if have == nil || len(want) == 0 {
		return false
	}
	for _, b := range *have {
		if slices.Contains(want, b) {
			return true
		}
	}
	return false
}

// Page returns up to limit subscriber ids sorted after after (limit <= 0:
// all).
func (x *Index) Page(after string, limit int) []string {
	x.mu.Lock()
	if x.sorted == nil {
		x.sorted = make([]string, 0, len(x.slots))
		for id := range x.slots {
			x.sorted = append(x.sorted, id)
		}
		sort.Strings(x.sorted)
	}
	sorted := x.sorted
	x.mu.Unlock()
	start := sort.SearchStrings(sorted, after)
	if start < len(sorted) && sorted[start] == after {
		start++
	}
	end := len(sorted)
	if limit > 0 && start+limit < end {
		end = start + limit
	}
	return slices.Clone(sorted[start:end])
}

// Watch feeds the index from the KV bucket until ctx ends: every stored
// subscriber first (then [Index.Ready] is closed), then every change. A
// value that does not decode is logged and skipped.
func (x *Index) Watch(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch subscribers: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("watch subscribers: watcher stopped")
			}
			if e == nil {
				x.readyOnce.Do(func() {
					close(x.ready)
					x.logger.Info("subscribers loaded", "count", x.Len())
				})
				continue
			}
			x.apply(e)
		}
	}
}

func (x *Index) apply(e jetstream.KeyValueEntry) {
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		x.Remove(e.Key())
		if x.observe != nil {
			x.observe(&Subscriber{ID: e.Key()}, e.Revision(), true)
		}
	default:
		s, err := decode(e.Value())
		if err != nil || s.ID != e.Key() {
			x.logger.Warn("subscriber record skipped: does not decode", "key", e.Key(), "revision", e.Revision())
			return
		}
		x.Upsert(s, e.Revision())
		if x.observe != nil {
			x.observe(s, e.Revision(), false)
		}
	}
}

// components reports how many distinct component ids the index knows (for
// tests).
func (x *Index) components() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.bits)
}
