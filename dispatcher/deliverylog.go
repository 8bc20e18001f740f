package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Outcome is what happened to one attempt of a delivery.
type Outcome string

// Outcomes recorded in the delivery log.
const (
	// Delivered: the provider accepted the notification.
	Delivered Outcome = "delivered"
	// Outboxed: the channel has no provider configured; the rendered
	// message was written to the local outbox.
	Outboxed Outcome = "outbox"
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

// final reports whether the delivery is over after this outcome: a job
// seeing it as its last record must not send again.
func (o Outcome) final() bool {
	switch o {
	case Delivered, Outboxed, Failed, Suppressed, Superseded, Unsubscribed, Disabled, Receipt:
		return true
	}
	return false
}

// sent reports whether the notification reached the provider.
func (o Outcome) sent() bool { return o == Delivered || o == Outboxed || o == Receipt }

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
	js     jetstream.JetStream
	stream jetstream.Stream
}

// append stores rec and waits for JetStream's acknowledgement.
func (l *deliveryLog) append(ctx context.Context, rec *Record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := l.js.Publish(ctx, logSubject(rec.SubscriberID, rec.DeliveryID), data); err != nil {
		return fmt.Errorf("delivery log: %w", err)
	}
	return nil
}

// last returns the latest record of a delivery, or nil when there is none.
func (l *deliveryLog) last(ctx context.Context, subscriberID, deliveryID string) (*Record, error) {
	msg, err := l.stream.GetLastMsgForSubject(ctx, logSubject(subscriberID, deliveryID))
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
	filter := subjDeliveryLog + q.SubscriberID + ".*"
	if q.DeliveryID != "" {
		filter = logSubject(q.SubscriberID, q.DeliveryID)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !q.Since.IsZero() {
		since := q.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		return []Record{}, nil
	}
	cons, err := l.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	ring := make([]Record, 0, min(q.Limit, int(total)))
	next := 0
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return nil, fmt.Errorf("delivery log: %w", err)
		}
		n := 0
		var pending uint64
		for msg := range batch.Messages() {
			n++
			var rec Record
			if json.Unmarshal(msg.Data(), &rec) != nil {
				continue
			}
			if len(ring) < q.Limit {
				ring = append(ring, rec)
			} else {
				ring[next] = rec
				next = (next + 1) % q.Limit
			}
			if md, err := msg.Metadata(); err == nil {
				pending = md.NumPending
			}
		}
		if batch.Error() != nil && !errors.Is(batch.Error(), jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("delivery log: %w", batch.Error())
		}
		if n == 0 || pending == 0 {
			break
		}
	}
	return append(ring[next:], ring[:next]...), nil
}
