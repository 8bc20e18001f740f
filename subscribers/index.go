package subscribers

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	// IncidentID and Sequence identify the update, for the followers of
	// its incident (see [Subscriber.Follow]); empty reaches none.
	IncidentID string
	Sequence   int64
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
//
// Its bulk holds no pointers, so that a million subscribers cost the
// garbage collector nothing to scan: subscriber ids live in one byte arena
// (the ids handed out in Targets point into it; it is only ever appended
// to, and compaction builds a new one), matchers in another, and the id →
// entry map is keyed by a hash of the id.
type Index struct {
	logger *slog.Logger
	// hash keys the id → entry map (maphash with a random seed; tests
	// make every id collide).
	hash func(string) uint64

	mu       sync.RWMutex
	slots    map[uint64]int32 // hash of the id -> entry
	collided map[string]int32 // ids whose hash another id took (rare)
	entries  []entry
	free     []int32
	ids      []byte    // id arena
	matchers []matcher // matcher arena
	extras   []uint16  // component bits >= 64 (rare)
	live     int
	garbage  int // arena bytes no live entry uses
	bits     map[string]uint16
	// names holds the interned endpoint ids ("e1", "mail": most
	// subscribers reuse a few), nameIdx their offsets; other endpoint
	// ids go to the id arena after their subscriber's id.
	names   []byte
	nameIdx map[string]uint32
	sorted  []string // ids in order, for paging; nil when stale
	// locales holds the distinct locale tags subscribers gave (few:
	// "fr-FR", "it-CH"...); localeIdx their positions. Index 0 is "".
	locales   []string
	localeIdx map[string]uint16
	// lastAudience sizes the next audience's allocation.
	lastAudience atomic.Int64

	readyOnce sync.Once
	ready     chan struct{}
	observe   func(s *Subscriber, rev uint64, deleted bool)

	// extra holds what the public pages need and matching does not: the
	// followers of each incident and the subscribers of each address.
	extra extraIndex
}

// OnChange registers fn to see every subscriber [Index.Watch] applies (for
// a removal, deleted is true and s holds only the id), e.g. to prime
// [Store.Prime]. Call it before Watch. fn must not modify s.
func (x *Index) OnChange(fn func(s *Subscriber, rev uint64, deleted bool)) { x.observe = fn }

// entry is one subscriber; idLen 0 marks a free entry.
type entry struct {
	rev   uint64
	idOff uint32
	epOff uint32
	idLen uint8
	epN   uint8
	// locale indexes the subscriber's locale tag in Index.locales.
	locale uint16
}

// matcher is what matching needs of one active endpoint, with the
// subscriber's filters already folded in.
type matcher struct {
	// comps holds component bits 0..63; extras[extraOff:extraOff+extraN]
	// the bits above (only catalogs of more than 64 components need
	// them).
	comps    uint64
	extraOff uint32
	extraN   uint16
	// statuses is a mask of incident.Status indexes; 0 means all.
	statuses uint16
	// nameOff and nameLen locate the endpoint id: in names when
	// flags&internedName, else in the id arena.
	nameOff uint32
	nameLen uint8
	// minRank is the least severe priority rank accepted; 0 means all.
	minRank uint8
	channel uint8
	flags   uint8
}

const (
	allComponents uint8 = 1 << iota
	internedName
)

// maxInterned bounds the distinct endpoint ids the index interns; the
// others are stored with their subscriber.
const maxInterned = 1 << 12

var channelNames = []string{channelEmail, channelSMS, channelSlack, channelWebhook}

// NewIndex returns an empty index; logger may be nil.
func NewIndex(logger *slog.Logger) *Index {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	seed := maphash.MakeSeed()
	return &Index{
		logger:    logger,
		hash:      func(id string) uint64 { return maphash.String(seed, id) },
		slots:     make(map[uint64]int32),
		collided:  make(map[string]int32),
		bits:      make(map[string]uint16),
		nameIdx:   make(map[string]uint32),
		locales:   []string{""},
		localeIdx: map[string]uint16{"": 0},
		ready:     make(chan struct{}),
	}
}

// Ready is closed once [Index.Watch] has loaded every stored subscriber.
func (x *Index) Ready() <-chan struct{} { return x.ready }

// Len returns the number of subscribers in the index.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.live
}

// id returns the id of e, as a string sharing the arena's bytes.
func (x *Index) id(e *entry) string {
	if e.idLen == 0 {
		return ""
	}
	return unsafe.String(&x.ids[e.idOff], int(e.idLen))
}

// find returns the entry of id. Called with x.mu held.
func (x *Index) find(id string) (int32, bool) {
	if i, ok := x.collided[id]; ok {
		return i, true
	}
	i, ok := x.slots[x.hash(id)]
	if !ok || x.id(&x.entries[i]) != id {
		return 0, false
	}
	return i, true
}

// Revision returns the KV revision of the indexed subscriber.
func (x *Index) Revision(id string) (uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i, ok := x.find(id)
	if !ok {
		return 0, false
	}
	return x.entries[i].rev, true
}

// Upsert indexes s at KV revision rev, replacing an older revision. A
// revision older than the indexed one is ignored. Ids longer than 255 bytes
// (which validation refuses) are not indexed.
func (x *Index) Upsert(s *Subscriber, rev uint64) {
	if len(s.ID) == 0 || len(s.ID) > 255 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.find(s.ID)
	if ok && x.entries[i].rev > rev {
		return
	}
	x.extra.upsert(s, x.hash)
	ms, own := x.build(s)
	locale := x.internLocale(s.Locale)
	if ok && len(own) == 0 {
		e := &x.entries[i]
		e.rev, e.locale = rev, locale
		if len(ms) <= int(e.epN) {
			copy(x.matchers[e.epOff:], ms)
			x.garbage += (int(e.epN) - len(ms)) * matcherSize
		} else {
			x.garbage += int(e.epN) * matcherSize
			e.epOff = uint32(len(x.matchers))
			x.matchers = append(x.matchers, ms...)
		}
		e.epN = uint8(len(ms))
		x.maybeCompact()
		return
	}
	if ok {
		// New endpoint names: the entry moves to the end of the arenas.
		x.removeLocked(s.ID, i)
	}
	e := entry{rev: rev, idOff: uint32(len(x.ids)), idLen: uint8(len(s.ID)), epOff: uint32(len(x.matchers)), epN: uint8(len(ms)), locale: locale}
	x.ids = append(x.ids, s.ID...)
	for k := range ms {
		if ms[k].flags&internedName == 0 {
			ms[k].nameOff = uint32(len(x.ids))
			x.ids = append(x.ids, own[k]...)
		}
	}
	x.matchers = append(x.matchers, ms...)
	if n := len(x.free); n > 0 {
		i = x.free[n-1]
		x.free = x.free[:n-1]
		x.entries[i] = e
	} else {
		i = int32(len(x.entries))
		x.entries = append(x.entries, e)
	}
	h := x.hash(s.ID)
	if j, taken := x.slots[h]; taken && x.entries[j].idLen != 0 {
		x.collided[s.ID] = i
	} else {
		x.slots[h] = i
	}
	x.live++
	x.sorted = nil
}

// Remove drops a subscriber from the index.
func (x *Index) Remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.extra.remove(id)
	if i, ok := x.find(id); ok {
		x.removeLocked(id, i)
		x.maybeCompact()
	}
}

// removeLocked drops entry i of id. Called with x.mu held.
func (x *Index) removeLocked(id string, i int32) {
	if _, c := x.collided[id]; c {
		delete(x.collided, id)
	} else {
		delete(x.slots, x.hash(id))
	}
	e := &x.entries[i]
	x.garbage += int(e.idLen) + int(e.epN)*matcherSize
	for _, m := range x.matchers[e.epOff : e.epOff+uint32(e.epN)] {
		if m.flags&internedName == 0 {
			x.garbage += int(m.nameLen)
		}
	}
	*e = entry{}
	x.free = append(x.free, i)
	x.live--
	x.sorted = nil
}

const matcherSize = int(unsafe.Sizeof(matcher{}))

// maybeCompact rebuilds the arenas once most of them is garbage. Ids
// handed out keep the old arena alive; it is never written again. Called
// with x.mu held.
func (x *Index) maybeCompact() {
	size := len(x.ids) + len(x.matchers)*matcherSize
	if x.garbage < 1<<20 || x.garbage*2 < size {
		return
	}
	ids := make([]byte, 0, len(x.ids)-min(x.garbage, len(x.ids))/2)
	ms := make([]matcher, 0, len(x.matchers))
	var extras []uint16
	for k := range x.entries {
		e := &x.entries[k]
		if e.idLen == 0 {
			continue
		}
		off := uint32(len(ids))
		ids = append(ids, x.id(e)...)
		epOff := uint32(len(ms))
		for _, m := range x.matchers[e.epOff : e.epOff+uint32(e.epN)] {
			if m.flags&internedName == 0 {
				name := x.ids[m.nameOff : m.nameOff+uint32(m.nameLen)]
				m.nameOff = uint32(len(ids))
				ids = append(ids, name...)
			}
			if m.extraN > 0 {
				off := uint32(len(extras))
				extras = append(extras, x.extras[m.extraOff:m.extraOff+uint32(m.extraN)]...)
				m.extraOff = off
			}
			ms = append(ms, m)
		}
		e.idOff, e.epOff = off, epOff
	}
	x.ids, x.matchers, x.extras, x.garbage = ids, ms, extras, 0
}

// build folds the subscriber's filters into one matcher per active
// endpoint. Endpoints whose filters cannot match anything are left out.
// own[k] is the id of matcher k when it is not interned (the caller stores
// it). Called with x.mu held.
func (x *Index) build(s *Subscriber) (out []matcher, own []string) {
	if s.Paused || s.Follow != nil {
		// A follower is matched by incident (extraIndex); a paused
		// subscriber not at all.
		return nil, nil
	}
	out = make([]matcher, 0, len(s.Endpoints))
	subRank := uint8(s.MinPriority.Rank())
	subStatuses := statusMask(s.Statuses)
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		if !ep.Active() || len(out) == 255 || len(ep.ID) == 0 || len(ep.ID) > 255 {
			continue
		}
		ch := slices.Index(channelNames, ep.Channel)
		if ch < 0 {
			continue
		}
		m := matcher{channel: uint8(ch), nameLen: uint8(len(ep.ID))}
		if off, ok := x.intern(ep.ID); ok {
			m.nameOff = off
			m.flags |= internedName
		}
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
			var extra []uint16
			for _, c := range comps {
				if b := x.bit(c); b < 64 {
					m.comps |= 1 << b
				} else {
					extra = append(extra, b)
				}
			}
			if len(extra) > 0 {
				m.extraOff, m.extraN = uint32(len(x.extras)), uint16(len(extra))
				x.extras = append(x.extras, extra...)
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
		if m.flags&internedName == 0 {
			own = append(own, ep.ID)
		} else {
			own = append(own, "")
		}
	}
	if !slices.ContainsFunc(own, func(s string) bool { return s != "" }) {
		own = nil
	}
	return out, own
}

// intern returns the offset of an endpoint id in x.names, interning it
// while there is room.
func (x *Index) intern(s string) (uint32, bool) {
	if v, ok := x.nameIdx[s]; ok {
		return v, true
	}
	if len(x.nameIdx) >= maxInterned {
		return 0, false
	}
	v := uint32(len(x.names))
	x.names = append(x.names, s...)
	x.nameIdx[strings.Clone(s)] = v
	return v, true
}

// name returns the endpoint id of m, sharing the arenas' bytes.
func (x *Index) name(m *matcher) string {
	if m.flags&internedName != 0 {
		return unsafe.String(&x.names[m.nameOff], int(m.nameLen))
	}
	return unsafe.String(&x.ids[m.nameOff], int(m.nameLen))
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

// maxLocales bounds the distinct locale tags the index keeps; the
// subscribers of further tags count as "" in [Index.AudienceLocales].
const maxLocales = 1 << 12

// internLocale returns the index of tag in x.locales, adding it. Called
// with x.mu held.
func (x *Index) internLocale(tag string) uint16 {
	if i, ok := x.localeIdx[tag]; ok {
		return i
	}
	if len(x.locales) >= maxLocales {
		return 0
	}
	i := uint16(len(x.locales))
	x.locales = append(x.locales, strings.Clone(tag))
	x.localeIdx[x.locales[i]] = i
	return i
}

// filter compiles q. Called with x.mu held.
func (x *Index) filter(q Query) filter {
	rank := uint8(q.Priority.Rank())
	if rank == 0 {
		rank = 4
	}
	var status uint16
	if i := q.Status.Index(); i >= 0 && i < 16 {
		status = 1 << i
	}
	f := filter{rank: rank, status: status, everyone: len(q.Components) == 0}
	for _, c := range q.Components {
		if b, ok := x.bits[c]; ok {
			if b < 64 {
				f.mask |= 1 << b
			} else {
				f.extra = append(f.extra, b)
			}
		}
	}
	return f
}

// AudienceLocales counts the subscribers the update described by q goes
// to (at least one of their endpoints matches, or they follow its incident
// as [Index.Audience] selects them), per locale tag as they gave it
// ("fr-BE": 120).
func (x *Index) AudienceLocales(q Query) map[string]int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	f := x.filter(q)
	counts := make([]int, len(x.locales))
	for k := range x.entries {
		e := &x.entries[k]
		for _, m := range x.matchers[e.epOff : e.epOff+uint32(e.epN)] {
			if f.match(&m, x.extras) {
				counts[e.locale]++
				break
			}
		}
	}
	if q.IncidentID != "" {
		// Followers have no matchers: they are counted once each here.
		for _, fl := range x.extra.follows[q.IncidentID] {
			if len(fl.targets) == 0 || !fl.covers(q.Sequence) {
				continue
			}
			if i, ok := x.find(fl.id); ok {
				counts[x.entries[i].locale]++
			}
		}
	}
	out := map[string]int{}
	for i, n := range counts {
		if n > 0 {
			out[x.locales[i]] = n
		}
	}
	return out
}

// Audience returns every active endpoint the update described by q goes
// to, in index order.
func (x *Index) Audience(q Query) []Target {
	x.mu.RLock()
	defer x.mu.RUnlock()
	f := x.filter(q)
	hint := int(x.lastAudience.Load())
	out := make([]Target, 0, hint+hint/8+16)
	for k := range x.entries {
		e := &x.entries[k]
		if e.epN == 0 {
			continue
		}
		var id string
		for _, m := range x.matchers[e.epOff : e.epOff+uint32(e.epN)] {
			if !f.match(&m, x.extras) {
				continue
			}
			if id == "" {
				id = x.id(e)
			}
			out = append(out, Target{SubscriberID: id, EndpointID: x.name(&m), Channel: channelNames[m.channel]})
		}
	}
	x.lastAudience.Store(int64(len(out)))
	if q.IncidentID != "" {
		out = x.extra.followers(out, q)
	}
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

func (f *filter) match(m *matcher, extras []uint16) bool {
	switch {
	case m.minRank != 0 && f.rank > m.minRank:
		return false
	case m.statuses != 0 && m.statuses&f.status == 0:
		return false
	case f.everyone || m.flags&allComponents != 0 || m.comps&f.mask != 0:
		return true
	}
	for _, b := range extras[m.extraOff : m.extraOff+uint32(m.extraN)] {
		if slices.Contains(f.extra, b) {
			return true
		}
	}
	return false
}

// Endpoints counts the active endpoints of every subscriber per channel
// ("sms": 1200).
func (x *Index) Endpoints() map[string]int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := map[string]int{}
	for k := range x.entries {
		e := &x.entries[k]
		for _, m := range x.matchers[e.epOff : e.epOff+uint32(e.epN)] {
			out[channelNames[m.channel]]++
		}
	}
	return out
}

// Load returns an index of every subscriber stored in kv now, for a
// command that reads it once (the watch is stopped once loaded).
func Load(ctx context.Context, kv jetstream.KeyValue, logger *slog.Logger) (*Index, error) {
	x := NewIndex(logger)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- x.Watch(wctx, kv) }()
	select {
	case <-x.Ready():
		cancel()
		<-done
		return x, nil
	case err := <-done:
		cancel()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("loading subscribers: %w", err)
	case <-ctx.Done():
		cancel()
		<-done
		return nil, fmt.Errorf("loading subscribers: %w", ctx.Err())
	}
}

// Page returns up to limit subscriber ids sorted after after (limit <= 0:
// all).
func (x *Index) Page(after string, limit int) []string {
	x.mu.Lock()
	if x.sorted == nil {
		x.sorted = make([]string, 0, x.live)
		for k := range x.entries {
			if e := &x.entries[k]; e.idLen != 0 {
				x.sorted = append(x.sorted, x.id(e))
			}
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
// value that does not decode is logged and skipped. A watch that fails or
// stops is started again after a second and replays the bucket (applying
// an entry twice is harmless), so the index never freezes.
func (x *Index) Watch(ctx context.Context, kv jetstream.KeyValue) error {
	for {
		err := x.watchOnce(ctx, kv)
		if ctx.Err() != nil {
			return nil
		}
		x.logger.Warn("subscribers watch stopped, restarting", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// watchOnce runs one watch until it stops or ctx ends.
func (x *Index) watchOnce(ctx context.Context, kv jetstream.KeyValue) error {
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
