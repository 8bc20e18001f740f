package dispatcher

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

// This file holds the engine's Go methods that the HTTP handlers of
// package api and the CLI call; the handlers themselves live in api.

// PublishResult is the answer to a publish.
type PublishResult struct {
	ID         string `json:"id"`
	IncidentID string `json:"incident_id"`
	Sequence   int64  `json:"sequence"`
	// StreamSeq is the update's sequence in INCIDENTS.
	StreamSeq uint64 `json:"stream_seq"`
	// Duplicate is true when JetStream already had this event id inside
	// its duplicate window: nothing new was stored.
	Duplicate bool `json:"duplicate"`
}

// PublishEvent validates an encoded event and publishes it on INCIDENTS
// with Nats-Msg-Id = event id, returning once JetStream stored it. Errors
// are the incident package's *TooLargeError or FieldErrors for bad input.
func PublishEvent(ctx context.Context, js jetstream.JetStream, data []byte, maxBytes int) (*PublishResult, error) {
	ev, err := incident.Decode(data, maxBytes)
	if err != nil {
		return nil, err
	}
	return PublishDecoded(ctx, js, ev, data)
}

// PublishDecoded publishes an event already decoded and validated from
// data (its exact encoding, stored as is) on INCIDENTS with Nats-Msg-Id =
// event id, returning once JetStream stored it.
func PublishDecoded(ctx context.Context, js jetstream.JetStream, ev *incident.Event, data []byte) (*PublishResult, error) {
	msg := nats.NewMsg(IncidentSubject(ev.IncidentID))
	msg.Data = data
	msg.Header.Set(hdrMsgID, ev.ID)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	return &PublishResult{ID: ev.ID, IncidentID: ev.IncidentID, Sequence: ev.Sequence, StreamSeq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// Publish validates an encoded event (within the configured size limit)
// and publishes it; see [PublishEvent].
func (d *Dispatcher) Publish(ctx context.Context, data []byte) (*PublishResult, error) {
	return PublishEvent(ctx, d.js, data, d.cfg.MaxEventBytes)
}

// PublishValid publishes an event already decoded from data; see
// [PublishDecoded].
func (d *Dispatcher) PublishValid(ctx context.Context, ev *incident.Event, data []byte) (*PublishResult, error) {
	return PublishDecoded(ctx, d.js, ev, data)
}

// MaxEventBytes is the size limit of one encoded event.
func (d *Dispatcher) MaxEventBytes() int { return d.cfg.MaxEventBytes }

// UnratedPriority is the priority an update without one is treated as.
func (d *Dispatcher) UnratedPriority() incident.Priority { return d.cfg.UnratedPriority }

// EraseSubscriber deletes subscriber id (see [EraseSubscriber]) and logs
// how many dead letters went with it.
func (d *Dispatcher) EraseSubscriber(ctx context.Context, id string) error {
	n, err := EraseSubscriber(ctx, d.store, d.dlq, id)
	if n > 0 {
		d.logger.Info("dead letters erased with their subscriber", "subscriber", id, "erased", n)
	}
	return err
}

// EraseSubscriber deletes subscriber id from store and erases the notices
// addressed to it directly from the dead letters dlq (a confirmation
// refused for good carries its address), so that a deleted subscription
// leaves only ids behind: the delivery log never holds an address. It
// returns how many dead letters it erased, and [subscribers.ErrNotFound]
// when there is no such subscriber, after erasing all the same: a
// deletion whose erasure failed is finished by trying again.
func EraseSubscriber(ctx context.Context, store *subscribers.Store, dlq *DeadLetters, id string) (int, error) {
	deleted := store.Delete(ctx, id)
	if deleted != nil && !errors.Is(deleted, subscribers.ErrNotFound) {
		return 0, deleted
	}
	n, err := dlq.Erase(ctx, id)
	if err != nil {
		return n, fmt.Errorf("subscriber %s: its dead letters were not erased: %w", id, err)
	}
	return n, deleted
}

// SubscriberPage is one page of subscribers in id order.
type SubscriberPage struct {
	// Items are the subscribers of the page, secrets in place (callers
	// showing them use Redacted).
	Items []*subscribers.Subscriber
	// Total counts every subscriber.
	Total int
	// Next is the id to pass as after for the next page; empty on the
	// last page.
	Next string
}

// ListSubscribers returns up to limit subscribers whose id sorts after
// after, from the in-memory index and the store.
func (d *Dispatcher) ListSubscribers(ctx context.Context, after string, limit int) (*SubscriberPage, error) {
	ids := d.index.Page(after, limit)
	page := &SubscriberPage{Items: make([]*subscribers.Subscriber, 0, len(ids)), Total: d.index.Len()}
	for _, id := range ids {
		sub, _, err := d.store.Get(ctx, id)
		if errors.Is(err, subscribers.ErrNotFound) {
			continue // removed since the index was read
		}
		if err != nil {
			return nil, err
		}
		page.Items = append(page.Items, sub)
	}
	if limit > 0 && len(ids) == limit {
		page.Next = ids[len(ids)-1]
	}
	return page, nil
}
