package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/links"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// Kinds of the notices the public pages send, addressed directly to an
// address that is not (or not yet) an active endpoint.
const (
	// KindConfirm asks, by email, to confirm an address (double opt-in).
	KindConfirm = templates.NoticeConfirm
	// KindFollowConfirm asks, by email, to confirm following an incident.
	KindFollowConfirm = templates.NoticeFollowConfirm
	// KindManageLink carries a link to the preference centre, by email.
	KindManageLink = templates.NoticeManageLink
	// KindCode carries the code that confirms a phone number, by SMS.
	KindCode = templates.NoticeCode
)

// directKind reports whether kind is a notice addressed directly.
func directKind(kind string) bool {
	switch kind {
	case KindConfirm, KindFollowConfirm, KindManageLink, KindCode:
		return true
	}
	return false
}

// Direct is the recipient and content of a notice addressed directly: the
// job carries the address, so the notice goes there and nowhere else, even
// when the endpoint is pending or its address changed meanwhile.
type Direct struct {
	// Address is the email address or E.164 phone number.
	Address string `json:"address"`
	// Locale, Timezone and Name are the recipient's, for the wording.
	Locale   string `json:"locale"`
	Timezone string `json:"tz,omitempty"`
	Name     string `json:"name,omitempty"`
	// Link is the signed link of KindConfirm, KindFollowConfirm and
	// KindManageLink.
	Link string `json:"link,omitempty"`
	// Code is the code of KindCode.
	Code string `json:"code,omitempty"`
	// IncidentID names the incident of KindFollowConfirm.
	IncidentID string `json:"incident,omitempty"`
	// Expires is when the link or code stops working.
	Expires time.Time `json:"expires"`
}

// ErrBadNotice is returned by [Dispatcher.SendNotice] for a notice that
// cannot be sent as asked (unknown kind, wrong channel, missing content).
var ErrBadNotice = errors.New("bad notice")

// SendNotice queues a notice of kind to n.Address through the delivery
// pipeline, like any notification (the channel's provider, or its outbox;
// retries, suppressions and the SMS caps apply), on behalf of the endpoint
// subscriberID/endpointID, which may be pending. KindCode goes by SMS, the
// other kinds by email. It returns the delivery id, under which the
// delivery log records the notice.
func (d *Dispatcher) SendNotice(ctx context.Context, kind, subscriberID, endpointID string, n Direct) (string, error) {
	channel := channels.Email
	switch {
	case !directKind(kind):
		return "", fmt.Errorf("%w: unknown kind %q", ErrBadNotice, kind)
	case kind == KindCode:
		channel = channels.SMS
		if n.Code == "" {
			return "", fmt.Errorf("%w: no code", ErrBadNotice)
		}
	case n.Link == "":
		return "", fmt.Errorf("%w: no link", ErrBadNotice)
	}
	if n.Address == "" || !subscribers.ValidID(subscriberID) || !subscribers.ValidID(endpointID) {
		return "", fmt.Errorf("%w: no address, or bad ids", ErrBadNotice)
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	eventID := kind + ":" + hex.EncodeToString(nonce[:])
	j := Job{
		ID: DeliveryID(eventID, subscriberID, endpointID), Kind: kind, EventID: eventID,
		SubscriberID: subscriberID, EndpointID: endpointID, Channel: channel, To: &n,
	}
	if err := d.enqueue(ctx, &j); err != nil {
		return "", fmt.Errorf("queueing the %s notice: %w", kind, err)
	}
	return j.ID, nil
}

// directTarget returns the recipient of a notice addressed directly, as
// the subscriber and endpoint the delivery loop works with.
func (j *Job) directTarget() (*subscribers.Subscriber, *subscribers.Endpoint) {
	sub := &subscribers.Subscriber{ID: j.SubscriberID, Locale: j.To.Locale, Timezone: j.To.Timezone, Name: j.To.Name}
	ep := &subscribers.Endpoint{ID: j.EndpointID, Channel: j.Channel, Address: j.To.Address}
	return sub, ep
}

// renderDirect renders a notice addressed directly.
func (d *Dispatcher) renderDirect(j *Job, rc templates.Recipient) (*templates.Rendered, error) {
	return d.renderer.RenderNotice(templates.Notice{
		Kind: j.Kind, Link: j.To.Link, Code: j.To.Code, IncidentID: j.To.IncidentID, Expires: j.To.Expires,
	}, j.Channel, rc)
}

// Index returns the in-memory subscriber index (audiences, followers,
// address holders), for the public pages.
func (d *Dispatcher) Index() *subscribers.Index { return d.index }

// SMSCap returns the daily SMS caps, or nil when none are enforced.
func (d *Dispatcher) SMSCap() *SMSCap { return d.smsCap }

// Links returns the sealer of the unsubscribe and preference links.
func (d *Dispatcher) Links() *links.Sealer { return d.links }
