package channels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/heraldhq/herald/secret"
)

// The channel names, as used in subscriber endpoints, NATS subjects and
// configuration.
const (
	Email   = "email"
	SMS     = "sms"
	Slack   = "slack"
	Webhook = "webhook"
)

// Names returns every channel name, in a stable order.
func Names() []string { return []string{Email, SMS, Slack, Webhook} }

// Channel sends rendered messages through one provider.
//
// Send must honour ctx's deadline, must not retry by itself (the dispatcher
// owns retries and their schedule), and must never put a secret (tokens,
// signing keys, secret-bearing URLs) in the error it returns.
type Channel interface {
	Send(ctx context.Context, ep Endpoint, msg *Message) (Receipt, error)
}

// Endpoint is where one message goes: the subscriber's endpoint as the
// dispatcher resolved it at send time.
type Endpoint struct {
	// SubscriberID and ID identify the endpoint, for the provider's logs
	// and idempotency keys.
	SubscriberID string
	ID           string
	// Address is the email address, the E.164 phone number, the webhook
	// URL, or the Slack incoming-webhook URL or channel id.
	Address string
	// Secret signs webhook payloads ("whsec_…"); empty for other
	// channels.
	Secret secret.Value
	// Name is the subscriber's display name, used in greetings and the
	// email To header. Optional.
	Name string
}

// Message is one rendered notification. Which fields a channel uses depends
// on the channel: email uses Subject, Text, HTML and Headers; SMS uses Text;
// Slack and webhooks use Body (JSON) and Text as a fallback.
type Message struct {
	// ID is the delivery id: stable across retries of the same
	// notification, so it serves as webhook-id, email Message-ID and
	// provider idempotency key.
	ID string
	// Kind is "incident.update" for incident notifications, or the kind
	// of a service message (e.g. "endpoint.disabled").
	Kind string
	// IncidentID, Sequence, Status and Closed describe the update, for
	// channels that keep per-incident state (Slack threads).
	IncidentID string
	Sequence   int64
	Status     string
	Closed     bool
	// Locale is the language the message is written in ("fr").
	Locale string
	// Subject is the email subject, or a one-line summary.
	Subject string
	// Text is the plain-text rendering (email text part, SMS body, Slack
	// fallback text).
	Text string
	// HTML is the email HTML part.
	HTML string
	// Body is the channel-specific payload: the webhook JSON, the Slack
	// Block Kit JSON.
	Body []byte
	// Parent is, for Slack, the incident's living parent message (Block
	// Kit JSON showing the current status), posted by the first update and
	// updated in place by later ones. Nil for other channels.
	Parent []byte
	// ContentType is Body's media type. Defaults to application/json.
	ContentType string
	// Headers are extra headers to set (email List-Unsubscribe…).
	Headers map[string]string
	// Attachments are files the message carries (email only: the
	// iCalendar event of a maintenance). Read-only.
	Attachments []Attachment
	// Attempt is the 1-based attempt number of this send.
	Attempt int
}

// Attachment is a file attached to a message.
type Attachment struct {
	// Filename is the name the recipient sees ("maintenance.ics").
	Filename string
	// ContentType is the media type with its parameters
	// ("text/calendar; charset=UTF-8; method=PUBLISH").
	ContentType string
	// Data is the content.
	Data []byte
}

// Receipt is what the provider said when it accepted a message.
type Receipt struct {
	// ProviderID is the provider's id for the message (Twilio SID, Slack
	// ts, SMTP queue id), when it gives one.
	ProviderID string
	// Status is the provider's answer code (HTTP status, SMTP code).
	Status int
	// Detail is a short, secret-free description for the delivery log.
	Detail string
	// Outbox is true when the message was written to the local outbox
	// instead of a provider.
	Outbox bool
	// Duration is how long the provider took to answer.
	Duration time.Duration
	// BodySHA256 is the SHA-256, in lower-case hex, of the exact bytes
	// the channel handed over for this message: the webhook body, the
	// email's RFC 5322 message (as submitted over SMTP, DKIM signature
	// included), the SMS text, the Slack message JSON; for the outbox,
	// the file it wrote (for email, the very bytes a relay would get).
	// Set whenever the bytes left Herald (or reached the outbox), also
	// on a failed send; empty when nothing was sent. See [HashBody].
	BodySHA256 string
}

// HashBody returns the SHA-256 of b in lower-case hex: the form of
// [Receipt.BodySHA256].
func HashBody(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
