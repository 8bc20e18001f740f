package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

// ChannelProgress counts the notifications of one update on one channel
// (or on all of them), by where each one stands.
type ChannelProgress struct {
	// Targets is the number of endpoints the update goes to.
	Targets int `json:"targets"`
	// Delivered: the provider accepted it (a later provider receipt, such
	// as an undelivered SMS, is in the ledger).
	Delivered int `json:"delivered"`
	// Outboxed: written to the outbox, the channel having no provider.
	Outboxed int `json:"outboxed"`
	// Failed: refused for good by the provider.
	Failed int `json:"failed"`
	// DeadLettered: attempts exhausted; in the dead letters.
	DeadLettered int `json:"dead_lettered"`
	// Skipped: not sent on purpose (suppressed, superseded,
	// unsubscribed, disabled, capped).
	Skipped int `json:"skipped"`
	// Recalled: cancelled by a recall before it was sent.
	Recalled int `json:"recalled"`
	// Parked: waiting for a retry or a deferral (quiet hours, a busy or
	// failing destination).
	Parked int `json:"parked"`
	// Waiting: not handled yet (queued, or being sent).
	Waiting int `json:"waiting"`
}

// settled is the number of notifications with a final outcome.
func (c *ChannelProgress) settled() int {
	return c.Delivered + c.Outboxed + c.Failed + c.DeadLettered + c.Skipped + c.Recalled
}

// UpdateProgress is where the notifications of one update stand.
type UpdateProgress struct {
	Sequence int64  `json:"sequence"`
	EventID  string `json:"event_id"`
	// State is the fan-out's: fanning_out, done, quiet (notify: false)
	// or late (older than the incident's latest: sent to nobody).
	State string `json:"state"`
	// RecalledAt is set once the update was recalled.
	RecalledAt *time.Time `json:"recalled_at,omitempty"`
	// Total sums the channels.
	Total ChannelProgress `json:"total"`
	// Channels has one entry per channel the update goes to.
	Channels map[string]ChannelProgress `json:"channels"`
	// Settled: the fan-out is over and every target has a final outcome
	// or is parked.
	Settled bool `json:"settled"`
}

// IncidentProgress is the progress of an incident's updates (those its
// snapshot lists, the most recent 100), oldest first.
type IncidentProgress struct {
	IncidentID string           `json:"incident_id"`
	Updates    []UpdateProgress `json:"updates"`
	// Snapshot is the incident snapshot Updates follow, read once with
	// them (so the two always agree).
	Snapshot *Snapshot `json:"-"`
}

// Update returns the progress of the update with event id eventID, or nil.
func (p *IncidentProgress) Update(eventID string) *UpdateProgress {
	for i := range p.Updates {
		if p.Updates[i].EventID == eventID {
			return &p.Updates[i]
		}
	}
	return nil
}

// Progress computes where the notifications of an incident's updates
// stand, from the incident's own delivery-log subjects
// (deliverylog.<incident>.>): the latest record of each delivery decides.
// It keeps, for the few incidents last asked about, a compact state per
// delivery (12 bytes and a map entry) and the stream position reached, so
// that asking again reads only the records written since. It is safe for
// concurrent use. Get it from [Dispatcher.Progress] or [NewProgress].
type Progress struct {
	log     jetstream.Stream
	snaps   jetstream.KeyValue
	recalls jetstream.KeyValue
	now     func() time.Time

	cache *lru.Cache[string, *progressTracker]
}

// progressIncidents is how many incidents' trackers are kept.
const progressIncidents = 8

// progressIdle is how long a tracker nobody asked about is kept.
const progressIdle = 10 * time.Minute

// NewProgress returns the progress of the streams and buckets t opened.
func NewProgress(t *Topology) *Progress {
	return newProgress(t, time.Now)
}

func newProgress(t *Topology, now func() time.Time) *Progress {
	cache, _ := lru.New[string, *progressTracker](progressIncidents)
	return &Progress{log: t.DeliveryLog, snaps: t.Snapshots, recalls: t.Recalls, now: now, cache: cache}
}

// ErrNoIncident is returned for an incident Herald has no snapshot of.
var ErrNoIncident = errors.New("no such incident")

// Incident returns the progress of incidentID's updates, or
// ErrNoIncident.
func (p *Progress) Incident(ctx context.Context, incidentID string) (*IncidentProgress, error) {
	if !incident.ValidIncidentID(incidentID) {
		return nil, ErrNoIncident
	}
	snap, _, err := (&snapshots{kv: p.snaps}).get(ctx, incidentID)
	if err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	if snap == nil {
		return nil, ErrNoIncident
	}
	tr, ok := p.cache.Get(incidentID)
	now := p.now()
	if !ok || now.Sub(tr.used) > progressIdle {
		tr = newProgressTracker(incidentID)
		p.cache.Add(incidentID, tr)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.used = now
	if err := tr.refresh(ctx, p.log); err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	out := &IncidentProgress{IncidentID: incidentID, Updates: make([]UpdateProgress, 0, len(snap.Updates)), Snapshot: snap}
	for _, u := range snap.Updates {
		up := tr.update(u)
		if p.recalls != nil {
			if m, err := getRecall(ctx, p.recalls, incidentID, u.Sequence); err != nil {
				return nil, fmt.Errorf("progress: %w", err)
			} else if m != nil && m.EventID == u.EventID {
				at := m.At
				up.RecalledAt = &at
			}
		}
		out.Updates = append(out.Updates, up)
	}
	return out, nil
}

// Progress returns where the notifications of an incident's updates
// stand, or ErrNoIncident.
func (d *Dispatcher) Progress(ctx context.Context, incidentID string) (*IncidentProgress, error) {
	return d.progress.Incident(ctx, incidentID)
}

// Categories of a delivery's latest record.
const (
	catDelivered uint8 = iota
	catOutboxed
	catFailed
	catDead
	catSkipped
	catRecalled
	catParked
	numCats
)

// category returns the category of a record's outcome; false for one that
// says nothing of where the delivery stands.
func category(o Outcome) (uint8, bool) {
	switch o {
	case Delivered, Receipt:
		return catDelivered, true
	case Outboxed, legacyOutboxed:
		return catOutboxed, true
	case Failed:
		return catFailed, true
	case DeadLettered:
		return catDead, true
	case Suppressed, Superseded, Unsubscribed, Disabled, Capped, Expired:
		return catSkipped, true
	case Recalled:
		return catRecalled, true
	case Retrying, Deferred:
		return catParked, true
	}
	return 0, false
}

// progressTracker is the state of one incident's deliveries.
type progressTracker struct {
	incidentID string
	mu         sync.Mutex
	used       time.Time
	// next is the stream sequence to read from (0: the beginning).
	next uint64
	seed maphash.Seed
	// deliveries maps a delivery id's hash to its update slot, channel
	// and category, packed (see pack).
	deliveries map[uint64]uint32
	slots      map[string]uint16 // event id → slot
	counts     [][numChannels][numCats]int
}

// numChannels is len(channels.Names()) (a test checks it).
const numChannels = 4

// channelIndex numbers the channels.
var channelIndex = func() map[string]uint8 {
	m := map[string]uint8{}
	for i, n := range channels.Names() {
		m[n] = uint8(i)
	}
	return m
}()

func newProgressTracker(incidentID string) *progressTracker {
	return &progressTracker{incidentID: incidentID, seed: maphash.MakeSeed(), deliveries: map[uint64]uint32{}, slots: map[string]uint16{}}
}

func pack(slot uint16, ch, cat uint8) uint32 { return uint32(slot)<<16 | uint32(ch)<<8 | uint32(cat) }

func unpack(v uint32) (slot uint16, ch, cat uint8) { return uint16(v >> 16), uint8(v >> 8), uint8(v) }

// refresh reads the records written since the last refresh.
func (tr *progressTracker) refresh(ctx context.Context, log jetstream.Stream) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjDeliveryLog + tr.incidentID + ".*.*"}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if tr.next > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, tr.next
	}
	// Nothing new: no reader to open.
	last, err := log.GetLastMsgForSubject(ctx, cfg.FilterSubjects[0])
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if last.Sequence < tr.next {
		return nil
	}
	cons, closeReader, err := openReader(ctx, log, cfg)
	if err != nil {
		return err
	}
	defer closeReader()
	return readStored(ctx, cons, false, func(msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		tr.next = md.Sequence.Stream + 1
		tr.add(msg.Data())
		return nil
	})
}

// add folds one record.
func (tr *progressTracker) add(data []byte) {
	rec, ok := scanProgressRecord(data)
	if !ok || rec.Kind != KindUpdate || rec.EventID == "" {
		return
	}
	cat, ok := category(rec.Outcome)
	if !ok {
		return
	}
	ch, ok := channelIndex[rec.Channel]
	if !ok {
		return
	}
	key := maphash.String(tr.seed, rec.DeliveryID)
	if v, seen := tr.deliveries[key]; seen {
		slot, pch, pcat := unpack(v)
		if pcat == catDelivered || pcat == catOutboxed || pcat == cat {
			return // a send stands, whatever follows
		}
		tr.counts[slot][pch][pcat]--
		tr.counts[slot][pch][cat]++
		tr.deliveries[key] = pack(slot, pch, cat)
		return
	}
	slot, ok := tr.slots[rec.EventID]
	if !ok {
		if len(tr.counts) >= 1<<16 {
			return
		}
		slot = uint16(len(tr.counts))
		tr.slots[rec.EventID] = slot
		tr.counts = append(tr.counts, [numChannels][numCats]int{})
	}
	tr.counts[slot][ch][cat]++
	tr.deliveries[key] = pack(slot, ch, cat)
}

// update returns the progress of the update u.
func (tr *progressTracker) update(u UpdateState) UpdateProgress {
	up := UpdateProgress{Sequence: u.Sequence, EventID: u.EventID, State: u.State, Channels: map[string]ChannelProgress{}}
	var counts *[numChannels][numCats]int
	if slot, ok := tr.slots[u.EventID]; ok {
		counts = &tr.counts[slot]
	}
	recorded := 0
	for _, name := range channels.Names() {
		var c ChannelProgress
		if counts != nil {
			n := counts[channelIndex[name]]
			c = ChannelProgress{Delivered: n[catDelivered], Outboxed: n[catOutboxed], Failed: n[catFailed], DeadLettered: n[catDead],
				Skipped: n[catSkipped], Recalled: n[catRecalled], Parked: n[catParked]}
		}
		seen := c.settled() + c.Parked
		recorded += seen
		c.Targets = max(u.ChannelTargets[name], seen)
		c.Waiting = c.Targets - seen
		if c.Targets == 0 {
			continue
		}
		up.Channels[name] = c
		up.Total.Targets += c.Targets
		up.Total.Delivered += c.Delivered
		up.Total.Outboxed += c.Outboxed
		up.Total.Failed += c.Failed
		up.Total.DeadLettered += c.DeadLettered
		up.Total.Skipped += c.Skipped
		up.Total.Recalled += c.Recalled
		up.Total.Parked += c.Parked
		up.Total.Waiting += c.Waiting
	}
	if u.ChannelTargets == nil && u.Targets > up.Total.Targets {
		// A snapshot of an earlier version: only the total is known.
		up.Total.Targets = u.Targets
		up.Total.Waiting = u.Targets - recorded
	}
	switch u.State {
	case stateDone:
		up.Settled = up.Total.Waiting == 0
	case stateQuiet, stateLate:
		up.Settled = true
	}
	return up
}

// progressRecord is what progress reads of a record.
type progressRecord struct {
	DeliveryID, Kind, EventID, Channel string
	Outcome                            Outcome
}

// scanProgressRecord reads the fields progress needs from a record as
// appendRecord writes it (its keys in that order), without decoding the
// rest; anything else goes through encoding/json.
func scanProgressRecord(data []byte) (progressRecord, bool) {
	var r progressRecord
	s := jobScanner{s: string(data)}
	if s.lit(`{"delivery_id":`) && s.str(&r.DeliveryID) && s.lit(`,"kind":`) && s.str(&r.Kind) && s.lit(`,"event_id":`) && s.str(&r.EventID) {
		if ch, ok := cutField(s.s, `,"channel":`); ok {
			if out, ok := cutField(s.s, `,"outcome":`); ok {
				r.Channel, r.Outcome = ch, Outcome(out)
				return r, true
			}
		}
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return r, false
	}
	return progressRecord{DeliveryID: rec.DeliveryID, Kind: rec.Kind, EventID: rec.EventID, Channel: rec.Channel, Outcome: rec.Outcome}, true
}

// cutField returns the plain string value that follows key in s (the
// first occurrence of key: the record's free-text fields come after the
// keys progress reads).
func cutField(s, key string) (string, bool) {
	i := strings.Index(s, key)
	if i < 0 {
		return "", false
	}
	p := jobScanner{s: s[i+len(key):]}
	var v string
	return v, p.str(&v)
}

// channelTargets counts targets by channel.
func channelTargets(targets []subscribers.Target) map[string]int {
	counts := map[string]int{}
	for i := range targets {
		counts[targets[i].Channel]++
	}
	return counts
}
