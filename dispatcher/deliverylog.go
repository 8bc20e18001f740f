package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
)

// Outcome is what happened to one attempt of a delivery.
type Outcome string

// Outcomes recorded in the delivery log.
const (
	// Delivered: the provider accepted the notification.
	Delivered Outcome = "delivered"
	// Outboxed: the channel has no provider configured; the rendered
	// message was written to the local outbox.
	Outboxed Outcome = "outboxed"
	// Retrying: the attempt failed transiently; another is scheduled.
	Retrying Outcome = "retry"
	// Failed: the provider refused the notification for good.
	Failed Outcome = "failed"
	// DeadLettered: the attempts are exhausted; the job is in the dead
	// letters for an operator to replay.
	DeadLettered Outcome = "dead_lettered"
	// Deferred: not attempted now (quiet hours, destination circuit
	// open); the job comes back later.
	Deferred Outcome = "deferred"
	// Suppressed: the address is on the suppression list.
	Suppressed Outcome = "suppressed"
	// Superseded: a newer update of the incident made this one moot for
	// a "latest only" channel.
	Superseded Outcome = "superseded"
	// Unsubscribed: the subscriber or endpoint no longer exists.
	Unsubscribed Outcome = "unsubscribed"
	// Disabled: the endpoint is disabled.
	Disabled Outcome = "disabled"
	// Receipt: a provider's delivery receipt arrived after the send
	// (SMS status callbacks).
	Receipt Outcome = "receipt"
)

// legacyOutboxed is how the first round recorded Outboxed.
const legacyOutboxed Outcome = "outbox"

// final reports whether the delivery is over after this outcome: a job
// seeing it as its last record must not send again.
func (o Outcome) final() bool {
	switch o {
	case Delivered, Outboxed, legacyOutboxed, Failed, Suppressed, Superseded, Unsubscribed, Disabled, Receipt, Capped, Expired, Recalled:
		return true
	}
	return false
}

// sent reports whether the notification reached the provider (or the
// outbox).
func (o Outcome) sent() bool {
	return o == Delivered || o == Outboxed || o == legacyOutboxed || o == Receipt
}

// Record is one line of the delivery log. It never holds a secret or an
// address: the subscriber and endpoint ids say where it went.
type Record struct {
	DeliveryID   string  `json:"delivery_id"`
	Kind         string  `json:"kind"`
	EventID      string  `json:"event_id"`
	IncidentID   string  `json:"incident_id,omitempty"`
	Sequence     int64   `json:"sequence,omitempty"`
	SubscriberID string  `json:"subscriber_id"`
	EndpointID   string  `json:"endpoint_id"`
	Channel      string  `json:"channel"`
	Attempt      int     `json:"attempt"`
	Outcome      Outcome `json:"outcome"`
	// Reason explains failures, skips and deferrals.
	Reason string `json:"reason,omitempty"`
	// Status and Code are the provider's answer (HTTP status, SMTP
	// code; provider error code).
	Status int    `json:"status,omitempty"`
	Code   string `json:"code,omitempty"`
	// ProviderID is the provider's id of the message (Twilio SID…).
	ProviderID string `json:"provider_id,omitempty"`
	// BodySHA256 is the SHA-256 (lower-case hex) of the exact bytes the
	// channel handed over (see channels.Receipt.BodySHA256).
	BodySHA256 string `json:"body_sha256,omitempty"`
	// Action is what followed a permanent failure (disable_endpoint,
	// suppress_address).
	Action string `json:"action,omitempty"`
	// NextAttemptAt is when a retried or deferred job comes back.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// Locale is the language the message was written in, Requested the
	// subscriber's tag, Fallback whether the fallback chain was used.
	Locale    string `json:"locale,omitempty"`
	Requested string `json:"requested_locale,omitempty"`
	Fallback  bool   `json:"locale_fallback,omitempty"`
	// DurationMS is how long the provider took.
	DurationMS float64 `json:"duration_ms,omitempty"`
	// At is when the record was written.
	At time.Time `json:"at"`
}

// deliveryLog appends to and reads DELIVERY_LOG.
type deliveryLog struct {
	// js publishes records asynchronously: it is the log's own, so that
	// its pending acknowledgements are not mixed with the fan-out's.
	js     jetstream.JetStream
	stream jetstream.Stream
	// stall lets an append wait for room among the pending publishes.
	stall jetstream.PublishOpt
}

// logAckTimeout bounds the wait for JetStream's acknowledgement of a record.
const logAckTimeout = 10 * time.Second

// logMaxPending bounds the records awaiting their acknowledgement; an
// append beyond it waits for room.
const logMaxPending = 16384

func newDeliveryLog(nc *nats.Conn, stream jetstream.Stream) (*deliveryLog, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(logAckTimeout), jetstream.WithPublishAsyncMaxPending(logMaxPending))
	if err != nil {
		return nil, err
	}
	return &deliveryLog{js: js, stream: stream, stall: jetstream.WithStallWait(logAckTimeout)}, nil
}

// recordMsg returns the message that stores rec.
func recordMsg(rec *Record) *nats.Msg {
	return &nats.Msg{Subject: logSubject(rec.IncidentID, rec.SubscriberID, rec.DeliveryID), Data: appendRecord(make([]byte, 0, 512), rec)}
}

// publish stores m asynchronously; the future tells when it is stored.
func (l *deliveryLog) publish(m *nats.Msg) (jetstream.PubAckFuture, error) {
	fut, err := l.js.PublishMsgAsync(m, l.stall)
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	return fut, nil
}

// append stores rec and waits for JetStream's acknowledgement.
func (l *deliveryLog) append(ctx context.Context, rec *Record) error {
	fut, err := l.publish(recordMsg(rec))
	if err != nil {
		return err
	}
	select {
	case <-fut.Ok():
		return nil
	case err := <-fut.Err():
		return fmt.Errorf("delivery log: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("delivery log: %w", ctx.Err())
	}
}

// appendRecord appends rec's JSON to dst: the same bytes as
// json.Marshal(rec), without reflection (one record is written per
// attempt).
func appendRecord(dst []byte, r *Record) []byte {
	dst = append(dst, `{"delivery_id":`...)
	dst = appendJSONString(dst, r.DeliveryID)
	dst = append(dst, `,"kind":`...)
	dst = appendJSONString(dst, r.Kind)
	dst = append(dst, `,"event_id":`...)
	dst = appendJSONString(dst, r.EventID)
	dst = appendOptString(dst, `,"incident_id":`, r.IncidentID)
	if r.Sequence != 0 {
		dst = append(dst, `,"sequence":`...)
		dst = strconv.AppendInt(dst, r.Sequence, 10)
	}
	dst = append(dst, `,"subscriber_id":`...)
	dst = appendJSONString(dst, r.SubscriberID)
	dst = append(dst, `,"endpoint_id":`...)
	dst = appendJSONString(dst, r.EndpointID)
	dst = append(dst, `,"channel":`...)
	dst = appendJSONString(dst, r.Channel)
	dst = append(dst, `,"attempt":`...)
	dst = strconv.AppendInt(dst, int64(r.Attempt), 10)
	dst = append(dst, `,"outcome":`...)
	dst = appendJSONString(dst, string(r.Outcome))
	dst = appendOptString(dst, `,"reason":`, r.Reason)
	if r.Status != 0 {
		dst = append(dst, `,"status":`...)
		dst = strconv.AppendInt(dst, int64(r.Status), 10)
	}
	dst = appendOptString(dst, `,"code":`, r.Code)
	dst = appendOptString(dst, `,"provider_id":`, r.ProviderID)
	dst = appendOptString(dst, `,"body_sha256":`, r.BodySHA256)
	dst = appendOptString(dst, `,"action":`, r.Action)
	if r.NextAttemptAt != nil {
		dst = append(dst, `,"next_attempt_at":`...)
		dst = appendJSONTime(dst, *r.NextAttemptAt)
	}
	dst = appendOptString(dst, `,"locale":`, r.Locale)
	dst = appendOptString(dst, `,"requested_locale":`, r.Requested)
	if r.Fallback {
		dst = append(dst, `,"locale_fallback":true`...)
	}
	if r.DurationMS != 0 {
		dst = append(dst, `,"duration_ms":`...)
		dst = appendJSONFloat(dst, r.DurationMS)
	}
	dst = append(dst, `,"at":`...)
	dst = appendJSONTime(dst, r.At)
	return append(dst, '}')
}

// appendOptString appends key and s, unless s is empty (omitempty).
func appendOptString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendJSONString(append(dst, key...), s)
}

// appendJSONString appends s as encoding/json writes it: plain when it is
// printable ASCII with nothing to escape, else through encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendJSONTime appends t as time.Time's MarshalJSON does.
func appendJSONTime(dst []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		b, err := json.Marshal(t)
		if err != nil {
			return append(dst, `null`...)
		}
		return append(dst, b...)
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendJSONFloat appends f as encoding/json writes a float64.
func appendJSONFloat(dst []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(dst, '0') // encoding/json refuses these; a duration is never one
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	n := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if m := len(dst) - n; m >= 4 && dst[len(dst)-4] == 'e' && dst[len(dst)-3] == '-' && dst[len(dst)-2] == '0' {
			dst[len(dst)-2] = dst[len(dst)-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

// last returns the latest record of a delivery, or nil when there is none.
func (l *deliveryLog) last(ctx context.Context, incidentID, subscriberID, deliveryID string) (*Record, error) {
	msg, err := l.stream.GetLastMsgForSubject(ctx, logSubject(incidentID, subscriberID, deliveryID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(msg.Data, &rec); err != nil {
		return nil, fmt.Errorf("delivery log: record %d: %w", msg.Sequence, err)
	}
	return &rec, nil
}

// done returns the record that makes a delivery over, or nil: its latest
// record when that one says sent, or final (unless the job is a replay,
// which retries refusals). A provider's receipt can land before the failed
// attempt it belongs to is recorded (the provider took the message, its
// answer did not reach Herald in time): for a channel with receipts, an
// earlier receipt also ends the delivery. last is the latest record (nil:
// none).
func (l *deliveryLog) done(ctx context.Context, incidentID, subscriberID, deliveryID, channel string, replay bool) (done, last *Record, err error) {
	last, err = l.last(ctx, incidentID, subscriberID, deliveryID)
	if err != nil || last == nil {
		return nil, nil, err
	}
	if last.Outcome.sent() || (!replay && last.Outcome.final()) {
		return last, last, nil
	}
	if channel != channels.SMS {
		return nil, last, nil
	}
	recs, err := l.list(ctx, Query{SubscriberID: subscriberID, DeliveryID: deliveryID, Limit: 1000})
	if err != nil {
		return nil, nil, err
	}
	for i := range recs {
		if recs[i].Outcome.sent() {
			return &recs[i], last, nil
		}
	}
	return nil, last, nil
}

// Query selects delivery log records.
type Query struct {
	// SubscriberID is required.
	SubscriberID string
	// DeliveryID narrows to one delivery.
	DeliveryID string
	// Since skips older records. Zero means the whole retention.
	Since time.Time
	// Limit keeps the newest Limit records. Defaults to 100, at most
	// 10 000.
	Limit int
}

// list returns the newest records matching q, oldest first.
func (l *deliveryLog) list(ctx context.Context, q Query) ([]Record, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 10000)
	// The subscriber's records under every incident, and those written
	// under the first round's subjects.
	filters := []string{subjDeliveryLog + "*." + q.SubscriberID + ".*", legacyLogFilter(q.SubscriberID)}
	if q.DeliveryID != "" {
		filters = []string{logSubject("*", q.SubscriberID, q.DeliveryID), subjDeliveryLog + q.SubscriberID + "." + q.DeliveryID}
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !q.Since.IsZero() {
		since := q.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	var total uint64
	for _, filter := range filters {
		info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return nil, fmt.Errorf("delivery log: %w", err)
		}
		for _, n := range info.State.Subjects {
			total += n
		}
	}
	if total == 0 {
		return []Record{}, nil
	}
	cons, closeReader, err := openReader(ctx, l.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	defer closeReader()
	ring := make([]Record, 0, min(q.Limit, int(total)))
	next := 0
	err = readOrdered(cons, func(msg jetstream.Msg, _ *jetstream.MsgMetadata) bool {
		var rec Record
		if json.Unmarshal(msg.Data(), &rec) != nil {
			return true
		}
		if len(ring) < q.Limit {
			ring = append(ring, rec)
		} else {
			ring[next] = rec
			next = (next + 1) % q.Limit
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	return append(ring[next:], ring[:next]...), nil
}
