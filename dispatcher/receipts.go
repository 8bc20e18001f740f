package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/subscribers"
)

// ProviderReceipt is a provider's later word on a message it accepted: an
// SMS status callback ("delivered", "undelivered" with an error code...).
type ProviderReceipt struct {
	// DeliveryID, SubscriberID and EndpointID identify the delivery, as
	// the channel asked the provider to echo them back.
	DeliveryID, SubscriberID, EndpointID string
	// Channel is the channel the message went through.
	Channel string
	// ProviderID is the provider's message id (Twilio SID).
	ProviderID string
	// Status is the provider's status word.
	Status string
	// Err is nil for a progress or success report, else the outcome as
	// the channel classifies it: channels.Disable for an invalid number,
	// channels.Suppress for an opt-out, channels.Permanent otherwise.
	Err error
}

// ErrUnknownDelivery is returned by [Dispatcher.RecordReceipt] for a receipt
// that names no delivery of Herald's.
var ErrUnknownDelivery = errors.New("receipt names no Herald delivery")

// RecordReceipt appends a provider receipt to the delivery log and, for a
// refusal that calls for it, disables the endpoint (telling the subscriber
// by email) or suppresses the address. Recording the same receipt twice
// appends a second record; the actions are idempotent.
func (d *Dispatcher) RecordReceipt(ctx context.Context, r ProviderReceipt) error {
	if !strings.HasPrefix(r.DeliveryID, "dlv_") || !subscribers.ValidID(r.DeliveryID) ||
		!subscribers.ValidID(r.SubscriberID) || !subscribers.ValidID(r.EndpointID) {
		return ErrUnknownDelivery
	}
	rec := Record{
		DeliveryID: r.DeliveryID, Kind: KindUpdate, SubscriberID: r.SubscriberID, EndpointID: r.EndpointID,
		Channel: r.Channel, Outcome: Receipt, ProviderID: r.ProviderID, At: d.cfg.Now().UTC(),
	}
	// The receipt joins the delivery's records, under its incident.
	last, err := d.log.last(ctx, "*", r.SubscriberID, r.DeliveryID)
	if err != nil {
		return fmt.Errorf("record receipt: %w", err)
	}
	if last != nil {
		rec.Kind, rec.EventID, rec.IncidentID, rec.Sequence = last.Kind, last.EventID, last.IncidentID, last.Sequence
		rec.Attempt = last.Attempt
	}
	rec.Reason = r.Status
	class := channels.Classify(r.Err)
	if r.Err != nil {
		rec.Reason = r.Status + ": " + oneLine(r.Err.Error())
		var pe *channels.ProviderError
		if errors.As(r.Err, &pe) {
			rec.Status, rec.Code = pe.Status, pe.Code
		}
		if class.Action != channels.NoAction {
			rec.Action = class.Action.String()
		}
	}
	if err := d.log.append(ctx, &rec); err != nil {
		return fmt.Errorf("record receipt: %w", err)
	}
	d.metrics.outcomes.WithLabelValues(r.Channel, string(Receipt)).Inc()
	if r.Err != nil && class.Action != channels.NoAction {
		logger := d.logger.With("channel", r.Channel, "delivery", r.DeliveryID, "subscriber", r.SubscriberID, "endpoint", r.EndpointID)
		d.applyAction(ctx, r.SubscriberID, r.EndpointID, r.Channel, "", logger, class.Action, r.Err)
	}
	return nil
}
