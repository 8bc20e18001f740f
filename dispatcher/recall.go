package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
)

// Recalled: an operator recalled the update before this notification was
// sent; it never will be.
const Recalled Outcome = "recalled"

// BucketRecalls holds a marker per recalled update.
const BucketRecalls = "recalls"

// reasonRecalled is the reason of a recalled record.
const reasonRecalled = "recalled by an operator"

// A recall cancels every notification of one update not yet sent: those
// queued (in their batch, not yet handled), parked (waiting for a retry)
// and deferred (quiet hours, a busy destination); for a maintenance
// announcement, its reminders too (each recorded recalled when it comes
// due: they wait parked, without records, until then).
//
// It works in two steps. First a marker, keyed by the update's incident
// and sequence, goes into the recalls bucket; every Herald process mirrors
// the bucket through a watch, and its delivery loop checks the marker when
// it screens a target and again just before the send, so nothing of the
// update is sent once the marker reached the process (a send already
// under way finishes, and its record says so). Then the recall writes a
// recalled record at once for each notification not yet over, so that the
// ledger and the progress show them recalled without waiting for each one
// to come back: those with records (parked, deferred) are found by the
// last record of each delivery of the incident, those with none by the
// jobs of the update still in DELIVERIES (a batch names its targets). A
// parked copy coming back later finds its delivery over; a queued target
// reached later finds the marker and, mostly, its recalled record: it
// writes one only when there is none yet (when the two meet, a second
// recalled record changes nothing in the ledger or the progress).

// recallMarker is the value of a recall's key in the recalls bucket.
type recallMarker struct {
	EventID    string    `json:"event_id"`
	IncidentID string    `json:"incident_id"`
	Sequence   int64     `json:"sequence"`
	At         time.Time `json:"at"`
}

// recallKey is the bucket key of an update: <incident>.<sequence> (the
// incident id alphabet is a KV key's).
func recallKey(incidentID string, seq int64) string {
	return incidentID + "." + strconv.FormatInt(seq, 10)
}

// getRecall returns the marker of an update, or nil.
func getRecall(ctx context.Context, kv jetstream.KeyValue, incidentID string, seq int64) (*recallMarker, error) {
	e, err := kv.Get(ctx, recallKey(incidentID, seq))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m recallMarker
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return nil, fmt.Errorf("recall %s: %w", e.Key(), err)
	}
	return &m, nil
}

// recalls mirrors the recalls bucket in memory: the delivery loop asks it
// for every target, without a round trip.
type recalls struct {
	kv     jetstream.KeyValue
	logger *slog.Logger

	mu      sync.RWMutex
	markers map[string]recallMarker
	ready   chan struct{}
}

func newRecalls(kv jetstream.KeyValue, logger *slog.Logger) *recalls {
	return &recalls{kv: kv, logger: logger, markers: map[string]recallMarker{}, ready: make(chan struct{})}
}

// watch mirrors the bucket until ctx ends.
func (r *recalls) watch(ctx context.Context) error {
	return mirror(ctx, r.kv, "recalls", r.logger, r.ready, func(e jetstream.KeyValueEntry) {
		if e.Operation() != jetstream.KeyValuePut {
			r.mu.Lock()
			delete(r.markers, e.Key())
			r.mu.Unlock()
			return
		}
		var m recallMarker
		if json.Unmarshal(e.Value(), &m) == nil {
			r.observe(m)
		}
	})
}

// observe records a marker.
func (r *recalls) observe(m recallMarker) {
	r.mu.Lock()
	r.markers[recallKey(m.IncidentID, m.Sequence)] = m
	r.mu.Unlock()
}

// recalled reports whether j's update was recalled: j notifies of it, or
// reminds of the maintenance it announced.
func (r *recalls) recalled(j *Job) bool {
	if j.Kind != KindUpdate && j.Kind != KindReminder {
		return false
	}
	eventID := j.updateEventID() // a reminder's is the update it reminds of
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.markers) == 0 {
		return false
	}
	m, ok := r.markers[recallKey(j.IncidentID, j.Sequence)]
	return ok && m.EventID == eventID
}

// recall is the stage that ends a target of a recalled update: recorded
// as recalled, unless the recall already wrote its record. (A failure to
// read the log runs it again later.)
func (t *task) recall() bool {
	dl := t.dl
	last, err := dl.d.log.last(dl.sendCtx, t.rec.IncidentID, t.target.SubscriberID, t.id)
	if err != nil {
		return t.retryInfra(componentDeliveryLog, err)
	}
	dl.d.health.ok(componentDeliveryLog)
	switch {
	case last != nil && last.Outcome == Recalled:
		t.over(false)
	case last != nil && last.Outcome.sent() && !t.m.replay:
		t.over(false) // sent before the recall: the log says so already
	default:
		if last != nil {
			t.number = max(t.number, last.Attempt)
		}
		t.skip(Recalled, reasonRecalled)
	}
	return false
}

// ErrNoUpdate is returned by a recall that names no update Herald fanned
// out.
var ErrNoUpdate = errors.New("no such update")

// RecallResult is the answer to a recall.
type RecallResult struct {
	IncidentID string `json:"incident_id"`
	EventID    string `json:"event_id"`
	Sequence   int64  `json:"sequence"`
	// RecalledAt is when the update was recalled (the first recall, when
	// it was recalled before: AlreadyRecalled).
	RecalledAt      time.Time `json:"recalled_at"`
	AlreadyRecalled bool      `json:"already_recalled"`
	// Recalled is the number of notifications this recall recorded as
	// recalled: queued, parked or deferred.
	Recalled int `json:"recalled"`
	// Sent lists the notifications already sent (delivered, or written
	// to the outbox), at most MaxRecallSent of them, SentTotal counting
	// them all: a correction can follow. The ledger
	// (GET /v1/ledger?event=...) has them all.
	Sent      []SentNotification `json:"sent"`
	SentTotal int                `json:"sent_total"`
	// Over counts the notifications that were over without being sent:
	// refused, dead-lettered, skipped, or recalled before.
	Over int `json:"over"`
}

// SentNotification is a notification sent before its update was recalled.
type SentNotification struct {
	DeliveryID   string    `json:"delivery_id"`
	SubscriberID string    `json:"subscriber_id"`
	EndpointID   string    `json:"endpoint_id"`
	Channel      string    `json:"channel"`
	Outcome      Outcome   `json:"outcome"`
	At           time.Time `json:"at"`
}

// MaxRecallSent bounds the sent notifications a recall's answer lists.
const MaxRecallSent = 10000

// Recall cancels every notification of the update eventID of incidentID
// not yet sent (see the comment above recallMarker): each is recorded as
// recalled at once, and no Herald process sends it. The answer lists the
// notifications already sent. A recall of an update recalled before is
// harmless: it records the notifications that came since (none, unless a
// process had not yet seen the marker). ErrNoUpdate when the incident's
// snapshot lists no such update.
func (d *Dispatcher) Recall(ctx context.Context, incidentID, eventID string) (*RecallResult, error) {
	r := &recaller{topo: d.topo, log: d.log, now: d.cfg.Now, logger: d.logger, observe: d.recalls.observe,
		count: func(channel string) { d.metrics.outcomes.WithLabelValues(channel, string(Recalled)).Inc() }}
	return r.recall(ctx, incidentID, eventID)
}

// RecallUpdate is [Dispatcher.Recall] for a process that runs no engine
// (the CLI), on the streams and buckets t opened through nc. An empty
// incidentID is looked up in the incident snapshots.
func RecallUpdate(ctx context.Context, nc *nats.Conn, t *Topology, incidentID, eventID string, logger *slog.Logger) (*RecallResult, error) {
	if incidentID == "" {
		u, err := findUpdate(ctx, t.Snapshots, eventID)
		if err != nil {
			return nil, fmt.Errorf("recall: %w", err)
		}
		if u == nil {
			return nil, ErrNoUpdate
		}
		incidentID = u.incidentID
	}
	log, err := newDeliveryLog(nc, t.DeliveryLog)
	if err != nil {
		return nil, err
	}
	r := &recaller{topo: t, log: log, now: time.Now, logger: logger, observe: func(recallMarker) {}, count: func(string) {}}
	return r.recall(ctx, incidentID, eventID)
}

// recaller carries out a recall.
type recaller struct {
	topo   *Topology
	log    *deliveryLog
	now    func() time.Time
	logger *slog.Logger
	// observe tells this process's delivery loop at once; count counts a
	// recalled record in the metrics.
	observe func(recallMarker)
	count   func(channel string)
}

func (r *recaller) recall(ctx context.Context, incidentID, eventID string) (*RecallResult, error) {
	if !incident.ValidIncidentID(incidentID) {
		return nil, ErrNoUpdate
	}
	snap, _, err := (&snapshots{kv: r.topo.Snapshots}).get(ctx, incidentID)
	if err != nil {
		return nil, fmt.Errorf("recall: %w", err)
	}
	var u *UpdateState
	if snap != nil {
		for i := range snap.Updates {
			if snap.Updates[i].EventID == eventID {
				u = &snap.Updates[i]
			}
		}
	}
	if u == nil {
		return nil, ErrNoUpdate
	}
	res := &RecallResult{IncidentID: incidentID, EventID: eventID, Sequence: u.Sequence, Sent: []SentNotification{}}
	m := recallMarker{EventID: eventID, IncidentID: incidentID, Sequence: u.Sequence, At: r.now().UTC()}
	data, _ := json.Marshal(m)
	if _, err := r.topo.Recalls.Create(ctx, recallKey(incidentID, u.Sequence), data); errors.Is(err, jetstream.ErrKeyExists) {
		prev, err := getRecall(ctx, r.topo.Recalls, incidentID, u.Sequence)
		if err != nil {
			return nil, fmt.Errorf("recall: %w", err)
		}
		if prev != nil && prev.EventID == eventID {
			m, res.AlreadyRecalled = *prev, true
		}
	} else if err != nil {
		return nil, fmt.Errorf("recall: %w", err)
	}
	r.observe(m) // this process stops at once; the others as their watch brings it
	res.RecalledAt = m.At
	r.logger.Warn("update recalled: its notifications not yet sent are cancelled", "incident", incidentID, "event", eventID, "sequence", u.Sequence)

	w := &recallWriter{r: r, ctx: ctx, seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}}
	if err := w.fromLog(res); err != nil {
		return nil, fmt.Errorf("recall: %w", err)
	}
	if err := w.fromQueue(res); err != nil {
		return nil, fmt.Errorf("recall: %w", err)
	}
	if err := w.wait(); err != nil {
		return nil, fmt.Errorf("recall: %w", err)
	}
	res.Recalled = w.written
	r.logger.Info("recall recorded", "incident", incidentID, "event", eventID, "recalled", res.Recalled, "sent", res.SentTotal, "over", res.Over)
	return res, nil
}

// recallWriter writes the recalled records of one recall.
type recallWriter struct {
	r    *recaller
	ctx  context.Context
	seed maphash.Seed
	// seen holds the deliveries of the update found in the log.
	seen    map[uint64]struct{}
	pending []jetstream.PubAckFuture
	written int
	// err holds the writes that failed.
	err error
}

// fromLog reads the last record of each delivery of the incident: those of
// the update already sent are listed, those not over are recalled.
func (w *recallWriter) fromLog(res *RecallResult) error {
	stream := w.r.topo.DeliveryLog
	cons, err := stream.CreateConsumer(w.ctx, jetstream.ConsumerConfig{
		FilterSubject:     subjDeliveryLog + res.IncidentID + ".*.*",
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: readerIdle,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), 5*time.Second)
		defer cancel()
		_ = stream.DeleteConsumer(ctx, cons.CachedInfo().Name)
	}()
	if cons.CachedInfo().NumPending == 0 {
		return nil
	}
	return readStored(w.ctx, cons, true, func(msg jetstream.Msg, _ *jetstream.MsgMetadata) error {
		var last Record
		if json.Unmarshal(msg.Data(), &last) != nil || last.EventID != res.EventID || last.Kind != KindUpdate {
			return nil
		}
		w.seen[maphash.String(w.seed, last.DeliveryID)] = struct{}{}
		switch {
		case last.Outcome.sent():
			res.SentTotal++
			if len(res.Sent) < MaxRecallSent {
				res.Sent = append(res.Sent, SentNotification{DeliveryID: last.DeliveryID, SubscriberID: last.SubscriberID,
					EndpointID: last.EndpointID, Channel: last.Channel, Outcome: sentOutcome(last.Outcome), At: last.At})
			}
		case last.Outcome.final() || last.Outcome == DeadLettered:
			res.Over++
		default: // parked: retry or deferred
			rec := last
			w.record(&rec)
		}
		return nil
	})
}

// sentOutcome names how a notification whose last record is o was sent.
func sentOutcome(o Outcome) Outcome {
	if o == Receipt {
		return Delivered
	}
	if o == legacyOutboxed {
		return Outboxed
	}
	return o
}

// fromQueue reads the update's jobs still in DELIVERIES (batches and
// single jobs not yet acknowledged; parked copies have records and were
// found in the log) and recalls their targets that have no record.
func (w *recallWriter) fromQueue(res *RecallResult) error {
	stream := w.r.topo.Deliveries
	for _, ch := range channels.Names() {
		subject := deliverySubject(ch)
		for seq := uint64(1); ; {
			msg, err := stream.GetMsg(w.ctx, seq, jetstream.WithGetMsgSubject(subject))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return err
			}
			seq = msg.Sequence + 1
			j, err := decodeJob(msg.Data)
			if err != nil || j.Kind != KindUpdate || j.EventID != res.EventID {
				continue
			}
			for _, tg := range j.targets() {
				id := j.deliveryID(tg)
				if _, ok := w.seen[maphash.String(w.seed, id)]; ok {
					continue
				}
				w.seen[maphash.String(w.seed, id)] = struct{}{}
				w.record(&Record{DeliveryID: id, Kind: KindUpdate, EventID: j.EventID, IncidentID: j.IncidentID, Sequence: j.Sequence,
					SubscriberID: tg.SubscriberID, EndpointID: tg.EndpointID, Channel: j.Channel})
			}
		}
	}
	return nil
}

// record writes a recalled record following rec, a delivery's last
// record (or its identity, when it has none).
func (w *recallWriter) record(rec *Record) {
	out := Record{DeliveryID: rec.DeliveryID, Kind: rec.Kind, EventID: rec.EventID, IncidentID: rec.IncidentID, Sequence: rec.Sequence,
		SubscriberID: rec.SubscriberID, EndpointID: rec.EndpointID, Channel: rec.Channel, Attempt: rec.Attempt,
		Outcome: Recalled, Reason: reasonRecalled, Locale: rec.Locale, Requested: rec.Requested, Fallback: rec.Fallback,
		At: w.r.now().UTC()}
	fut, err := w.r.log.publish(recordMsg(&out))
	if err != nil {
		// Refused at once (too many pending): written synchronously.
		if err := w.r.log.append(w.ctx, &out); err != nil {
			w.err = errors.Join(w.err, err)
			return
		}
	} else {
		w.pending = append(w.pending, fut)
	}
	w.written++
	w.r.count(out.Channel)
}

// wait waits until every record is stored.
func (w *recallWriter) wait() error {
	if w.err != nil {
		return w.err
	}
	for _, f := range w.pending {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("delivery log: %w", err)
		case <-w.ctx.Done():
			return w.ctx.Err()
		}
	}
	return nil
}

// recallsBucketConfig is the recalls bucket's configuration: markers are
// few (one per recalled update) and kept as long as the update's jobs may
// come back (a dead letter replayed months later).
func recallsBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: BucketRecalls, Description: "Recalled updates, by incident and sequence", History: 1, Storage: jetstream.FileStorage}
}
