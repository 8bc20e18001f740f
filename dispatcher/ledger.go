package dispatcher

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

// The ledger is the delivery log read as one row per notification (per
// delivery id): who was told what, on which channel, in which language,
// when, with the hash of the exact bytes sent and the provider's last word.
//
// The log holds one record per target and attempt, and a delivery's
// records are not contiguous: its retries, deferrals and receipts come
// hours or days apart, between millions of other records. Rows are folded
// with memory that does not grow with the export, in two passes over the
// same records that run side by side:
//
//  1. a consumer that delivers the last record of each subject
//     (DeliverLastPerSubject; every delivery has a subject of its own,
//     deliverylog.<incident>.<subscriber>.<delivery>), headers only, in
//     stream order: the sequence at which each delivery is complete;
//  2. a consumer of every record, in stream order, that folds each record
//     into its delivery's row and emits the row when it reaches that
//     delivery's last sequence.
//
// Only the deliveries begun and not yet complete at the point being read
// are held: a few seconds of traffic for deliveries sent at once, the
// retrying ones for longer. The server builds the list of last sequences
// for one reading (8 bytes per delivery), so an export reads one incident
// at a time: deliverylog.<incident>.> selects an incident's records without
// touching the rest of the log, and deliverylog.*.<subscriber>.* a
// subscriber's.

// LedgerFilter selects the notifications of a ledger export. The zero
// value selects every notification in the delivery log.
type LedgerFilter struct {
	// IncidentID keeps the notifications of one incident (read by its
	// own subjects, deliverylog.<incident>.>).
	IncidentID string
	// SubscriberID keeps one subscriber's notifications.
	SubscriberID string
	// EventID keeps the notifications of one update (read by its
	// incident's subjects, the incident found in the snapshots).
	EventID string
	// Since and Until keep the notifications whose first record was
	// stored in [Since, Until). Zero means unbounded.
	Since, Until time.Time
}

// validate checks the filter's ids, which become subject tokens.
func (f LedgerFilter) validate() error {
	var errs incident.FieldErrors
	if f.IncidentID != "" && !incident.ValidIncidentID(f.IncidentID) {
		errs = append(errs, incident.FieldError{Field: "incident", Message: "must be an incident id (letters, digits, '-' and '_')"})
	}
	if f.SubscriberID != "" && !subscribers.ValidID(f.SubscriberID) {
		errs = append(errs, incident.FieldError{Field: "subscriber", Message: "must be a subscriber id"})
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		errs = append(errs, incident.FieldError{Field: "until", Message: "must be after since"})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// LedgerRow is one notification of the ledger: the fold of its delivery's
// records.
type LedgerRow struct {
	DeliveryID string `json:"delivery_id"`
	// Kind is incident.update, or a notice's kind.
	Kind string `json:"kind"`
	// IncidentID, EventID and Sequence name the update.
	IncidentID string `json:"incident_id,omitempty"`
	EventID    string `json:"event_id"`
	Sequence   int64  `json:"sequence,omitempty"`
	// SubscriberID, EndpointID and Channel say where it went.
	SubscriberID string `json:"subscriber_id"`
	EndpointID   string `json:"endpoint_id"`
	Channel      string `json:"channel"`
	// RequestedLocale is the subscriber's language tag, Locale the
	// language the message was written in, LocaleFallback whether that
	// was a fallback.
	RequestedLocale string `json:"requested_locale,omitempty"`
	Locale          string `json:"locale,omitempty"`
	LocaleFallback  bool   `json:"locale_fallback"`
	// BodySHA256 is the SHA-256 of the exact bytes sent (of the last
	// attempt, when none succeeded).
	BodySHA256 string `json:"body_sha256,omitempty"`
	// FirstAttemptAt is when Herald first handled the notification: its
	// first attempt, deferral or skip.
	FirstAttemptAt time.Time `json:"first_attempt_at"`
	// Outcome is the notification's outcome: delivered or outboxed once
	// sent (whatever came after), else its latest one, Final telling
	// whether it is over (retry and deferred are not).
	Outcome   Outcome   `json:"outcome"`
	OutcomeAt time.Time `json:"outcome_at"`
	Final     bool      `json:"final"`
	// Attempts is the number of the last attempt.
	Attempts int `json:"attempts"`
	// Status, Reason and Action are those of the outcome's record.
	Status int    `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	Action string `json:"action,omitempty"`
	// ProviderID is the provider's message id.
	ProviderID string `json:"provider_id,omitempty"`
	// Receipt is the provider's last receipt (queued, sent, delivered,
	// undelivered, failed; bounced for an email address the mail server
	// refused for good), ReceiptAt when it was recorded.
	Receipt   string     `json:"receipt,omitempty"`
	ReceiptAt *time.Time `json:"receipt_at,omitempty"`
	// Records is the number of delivery-log records folded.
	Records int `json:"records"`
}

// fold adds one record of the row's delivery, in stream order.
func (r *LedgerRow) fold(rec *Record) {
	if r.Records == 0 {
		r.DeliveryID, r.Kind, r.IncidentID, r.EventID, r.Sequence = rec.DeliveryID, rec.Kind, rec.IncidentID, rec.EventID, rec.Sequence
		r.SubscriberID, r.EndpointID, r.Channel = rec.SubscriberID, rec.EndpointID, rec.Channel
		r.FirstAttemptAt = rec.At
	}
	r.Records++
	if r.EventID == "" && rec.EventID != "" { // a receipt recorded before its delivery's records were found
		r.Kind, r.IncidentID, r.EventID, r.Sequence = rec.Kind, rec.IncidentID, rec.EventID, rec.Sequence
	}
	if rec.ProviderID != "" && r.ProviderID == "" {
		r.ProviderID = rec.ProviderID
	}
	sent := r.Outcome.sent()
	if rec.Outcome == Receipt {
		at := rec.At
		r.Receipt, r.ReceiptAt = receiptStatus(rec.Reason), &at
		if !sent {
			// The provider took the message (its answer to the send was
			// lost): it was sent.
			r.Outcome, r.OutcomeAt, r.Final = Delivered, rec.At, true
		}
		return
	}
	r.Attempts = max(r.Attempts, rec.Attempt)
	if rec.Requested != "" {
		r.RequestedLocale = rec.Requested
	}
	if rec.Locale != "" {
		r.Locale, r.LocaleFallback = rec.Locale, rec.Fallback
	}
	if sent {
		return // what follows a send (a recall that came too late) does not undo it
	}
	r.Outcome, r.OutcomeAt = rec.Outcome, rec.At
	r.Final = rec.Outcome.final() || rec.Outcome == DeadLettered
	if rec.Outcome == Failed && rec.Channel == channels.Email && rec.Action == channels.SuppressAddress.String() {
		// The mail server refused the address for good: a hard bounce.
		at := rec.At
		r.Receipt, r.ReceiptAt = "bounced", &at
	}
	r.Status, r.Reason, r.Action = rec.Status, rec.Reason, rec.Action
	if rec.BodySHA256 != "" {
		r.BodySHA256 = rec.BodySHA256
	}
	if rec.ProviderID != "" {
		r.ProviderID = rec.ProviderID
	}
}

// receiptStatus is the provider's status word of a receipt record's
// reason ("undelivered: sms: 30003 ..." → "undelivered").
func receiptStatus(reason string) string {
	if i := strings.IndexByte(reason, ':'); i >= 0 {
		reason = reason[:i]
	}
	return strings.TrimSpace(reason)
}

// Ledger reads the delivery log as one row per notification. Get it from
// [Dispatcher.Ledger], or [NewLedger] for a process that runs no engine.
type Ledger struct {
	log   jetstream.Stream
	snaps jetstream.KeyValue
}

// NewLedger returns the ledger of the streams and buckets t opened.
func NewLedger(t *Topology) *Ledger {
	return &Ledger{log: t.DeliveryLog, snaps: t.Snapshots}
}

// Ledger returns the ledger of the delivery log.
func (d *Dispatcher) Ledger() *Ledger {
	return &Ledger{log: d.topo.DeliveryLog, snaps: d.topo.Snapshots}
}

// ledgerBatch is how many messages one fetch of a ledger reading asks for.
const ledgerBatch = 2000

// Export calls emit with each notification f selects, and returns how many
// it emitted. Rows come incident by incident (in incident id order; then
// the notices of no incident, then the first round's records); within an
// incident, in the order their deliveries completed, those still open
// last. The rows are those of the log as it was when Export began. A bad
// filter is an incident.FieldErrors; an error of emit stops the export and
// is returned as is.
func (l *Ledger) Export(ctx context.Context, f LedgerFilter, emit func(*LedgerRow) error) (int, error) {
	if err := f.validate(); err != nil {
		return 0, err
	}
	info, err := l.log.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("ledger: %w", err)
	}
	end := info.State.LastSeq
	if end == 0 {
		return 0, nil
	}
	if f.EventID != "" && f.IncidentID == "" {
		u, err := findUpdate(ctx, l.snaps, f.EventID)
		if err != nil {
			return 0, fmt.Errorf("ledger: %w", err)
		}
		if u != nil {
			f.IncidentID = u.incidentID
		} // else older than its snapshot's last 100 updates: every incident is read
	}
	n := 0
	for g, err := range l.groups(ctx, f) {
		if err != nil {
			return n, fmt.Errorf("ledger: %w", err)
		}
		m, err := l.exportGroup(ctx, g, end, f, emit)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// groups yields the subject filters an export reads, one at a time.
func (l *Ledger) groups(ctx context.Context, f LedgerFilter) func(yield func(string, error) bool) {
	return func(yield func(string, error) bool) {
		sub := "*"
		if f.SubscriberID != "" {
			sub = f.SubscriberID
		}
		switch {
		case f.IncidentID != "":
			yield(subjDeliveryLog+f.IncidentID+"."+sub+".*", nil)
			return
		case f.SubscriberID != "":
			// A subscriber's history is small: one reading across
			// incidents, then the first round's subjects.
			if yield(subjDeliveryLog+"*."+sub+".*", nil) {
				yield(legacyLogFilter(f.SubscriberID), nil)
			}
			return
		}
		ids, err := incidentIDs(ctx, l.snaps)
		if err != nil {
			yield("", err)
			return
		}
		for _, id := range ids {
			if !yield(subjDeliveryLog+id+".*.*", nil) {
				return
			}
		}
		if yield(subjDeliveryLog+noIncident+".*.*", nil) {
			yield(subjDeliveryLog+"*.*", nil)
		}
	}
}

// incidentIDs returns the ids of every incident with a snapshot, sorted.
func incidentIDs(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = lister.Stop() }()
	var ids []string
	for k := range lister.Keys() {
		if incident.ValidIncidentID(k) {
			ids = append(ids, k)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// foldEntry is a delivery being folded.
type foldEntry struct {
	row      LedgerRow
	firstSeq uint64
	// excluded: the delivery is outside the filter; it is kept only so
	// that its later records are not taken for a new delivery.
	excluded bool
}

// exportGroup exports the notifications of the records filter selects,
// up to stream sequence end.
func (l *Ledger) exportGroup(ctx context.Context, filter string, end uint64, f LedgerFilter, emit func(*LedgerRow) error) (int, error) {
	// One request says whether the group has records at all, and any
	// stored since the filter's start (none: nothing can start in range).
	last, err := l.log.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ledger: %w", err)
	}
	if !f.Since.IsZero() && last.Time.Before(f.Since) {
		return 0, nil
	}
	lasts, err := openLastSeqs(ctx, l.log, filter, end)
	if err != nil {
		return 0, err
	}
	defer lasts.close()
	cons, closeReader, err := openReader(ctx, l.log, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return 0, fmt.Errorf("ledger: %w", err)
	}
	defer closeReader()

	open := map[string]*foldEntry{}
	included := 0 // open entries that are not excluded
	n := 0
	head, err := lasts.next(ctx)
	if err != nil {
		return 0, fmt.Errorf("ledger: %w", err)
	}
	err = readStored(ctx, cons, false, func(msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		seq := md.Sequence.Stream
		if seq > end {
			return errStopReading
		}
		// A delivery whose last record expired before it was read
		// stays open, and is emitted at the end.
		for head < seq {
			if head, err = lasts.next(ctx); err != nil {
				return err
			}
		}
		var rec Record
		if err := json.Unmarshal(msg.Data(), &rec); err != nil || rec.DeliveryID == "" {
			return nil // not a record of Herald's
		}
		e := open[rec.DeliveryID]
		if e == nil {
			if !f.Until.IsZero() && !md.Timestamp.Before(f.Until) && included == 0 {
				return errStopReading // nothing more can start in range, nothing open needs more
			}
			e = &foldEntry{firstSeq: seq, excluded: !f.keeps(&rec, md.Timestamp)}
			open[rec.DeliveryID] = e
			if !e.excluded {
				included++
			}
		}
		if !e.excluded {
			e.row.fold(&rec)
		}
		if head != seq {
			return nil
		}
		delete(open, rec.DeliveryID)
		if !e.excluded {
			included--
			if err := emit(&e.row); err != nil {
				return &emitError{err}
			}
			n++
		}
		head, err = lasts.next(ctx)
		return err
	})
	var ee *emitError
	switch {
	case errors.As(err, &ee):
		return n, ee.err
	case err != nil:
		return n, fmt.Errorf("ledger: %w", err)
	}
	// The deliveries still open: those with records after the export
	// began, or whose last record expired meanwhile.
	rest := make([]*foldEntry, 0, included)
	for _, e := range open {
		if !e.excluded {
			rest = append(rest, e)
		}
	}
	slices.SortFunc(rest, func(a, b *foldEntry) int { return cmp.Compare(a.firstSeq, b.firstSeq) })
	for _, e := range rest {
		if err := emit(&e.row); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// emitError carries an error of the export's emit out of a reading: it is
// returned as it is.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }
func (e *emitError) Unwrap() error { return e.err }

// keeps reports whether the delivery whose first record is rec, stored at
// ts, is one f selects.
func (f LedgerFilter) keeps(rec *Record, ts time.Time) bool {
	switch {
	case f.EventID != "" && rec.EventID != f.EventID:
		return false
	case f.SubscriberID != "" && rec.SubscriberID != f.SubscriberID:
		return false
	case !f.Since.IsZero() && ts.Before(f.Since):
		return false
	case !f.Until.IsZero() && !ts.Before(f.Until):
		return false
	}
	return true
}

// lastSeqs reads the stream sequence of the last record of each subject a
// filter selects, in ascending order, up to a sequence.
type lastSeqs struct {
	stream jetstream.Stream
	cons   jetstream.Consumer
	end    uint64
	buf    []uint64
	// consSeq is the consumer sequence of the last message read: a gap
	// means a message was lost on the way, and the reading fails.
	consSeq uint64
	done    bool
}

// noSeq stands for "no more last sequences": above every stream sequence.
const noSeq = ^uint64(0)

// openLastSeqs starts reading the last sequence of each subject of filter
// up to end. It uses a plain consumer (an ordered one would, after a
// reset, go on with every message instead of the last ones).
func openLastSeqs(ctx context.Context, stream jetstream.Stream, filter string, end uint64) (*lastSeqs, error) {
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     filter,
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		HeadersOnly:       true,
		InactiveThreshold: readerIdle,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	l := &lastSeqs{stream: stream, cons: cons, end: end}
	if cons.CachedInfo().NumPending == 0 {
		l.done = true
	}
	return l, nil
}

// next returns the next last sequence, or noSeq when there is none.
func (l *lastSeqs) next(ctx context.Context) (uint64, error) {
	for len(l.buf) == 0 {
		if l.done {
			return noSeq, nil
		}
		if err := l.fill(ctx); err != nil {
			return 0, err
		}
	}
	seq := l.buf[0]
	l.buf = l.buf[1:]
	return seq, nil
}

// fill fetches the next batch. A consumer just created on a clustered
// stream may take a moment to deliver: an empty first fetch is tried
// again until readerWait is over (as readOrdered does).
func (l *lastSeqs) fill(ctx context.Context) error {
	deadline := time.Now().Add(readerWait)
	for {
		batch, err := l.cons.Fetch(ledgerBatch, jetstream.FetchMaxWait(readerWait))
		if err != nil {
			return err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Consumer != l.consSeq+1 {
				return errLostMessages
			}
			l.consSeq = md.Sequence.Consumer
			if md.Sequence.Stream > l.end {
				l.done = true // records stored after the export began
				return nil
			}
			l.buf = append(l.buf, md.Sequence.Stream)
			if md.NumPending == 0 {
				l.done = true
				return nil // all read: no need to wait for the fetch to expire
			}
		}
		err = batch.Error()
		switch {
		case got > 0:
			return ctx.Err()
		case err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) && !time.Now().Before(deadline):
			return err
		case l.consSeq > 0 || !time.Now().Before(deadline):
			l.done = true // nothing more
			return ctx.Err()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // not ready yet
		}
	}
}

// close deletes the consumer.
func (l *lastSeqs) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if info := l.cons.CachedInfo(); info != nil {
		_ = l.stream.DeleteConsumer(ctx, info.Name)
	}
}
