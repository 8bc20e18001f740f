package subscribers

import (
	"time"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/secret"
)

// Subscriber is a merchant or partner who receives notifications, with its
// preferences and endpoints.
type Subscriber struct {
	// ID identifies the subscriber: 1 to 64 letters, digits, '-' or '_'
	// (it is part of NATS subjects and KV keys).
	ID string `json:"id"`
	// Name is the display name ("Boulangerie Dupont"). Optional.
	Name string `json:"name,omitempty"`
	// Locale is a BCP 47 tag ("fr-FR"); templates match it to a
	// supported language. Required.
	Locale string `json:"locale"`
	// Timezone is an IANA zone ("Europe/Paris") for dates and quiet
	// hours. Defaults to UTC.
	Timezone string `json:"timezone,omitempty"`
	// Components restricts notifications to these component ids; empty
	// means all components.
	Components []string `json:"components,omitempty"`
	// MinPriority is the least severe priority notified (P1..P4); empty
	// means all priorities.
	MinPriority incident.Priority `json:"min_priority,omitempty"`
	// Statuses restricts notifications to updates with these statuses;
	// empty means all statuses.
	Statuses []incident.Status `json:"statuses,omitempty"`
	// Endpoints are where notifications go. At least one.
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one address of a subscriber on one channel. It may narrow the
// subscriber's components, priority and statuses, and carry quiet hours.
type Endpoint struct {
	// ID identifies the endpoint within its subscriber (same alphabet as
	// subscriber ids, at most 64 bytes).
	ID string `json:"id"`
	// Channel is "email", "sms", "slack" or "webhook".
	Channel string `json:"channel"`
	// Address is the email address or the E.164 phone number.
	Address string `json:"address,omitempty"`
	// URL is the webhook endpoint (https).
	URL string `json:"url,omitempty"`
	// Secret signs webhook payloads: "whsec_" + base64 of 24 to 64 bytes.
	Secret secret.Value `json:"secret,omitempty"`
	// WebhookURL is a Slack incoming-webhook URL; it is a credential.
	WebhookURL secret.Value `json:"webhook_url,omitempty"`
	// SlackChannel is a Slack channel id for bot-token delivery.
	SlackChannel string `json:"slack_channel,omitempty"`
	// Components narrows the subscriber's components for this endpoint.
	Components []string `json:"components,omitempty"`
	// MinPriority narrows the subscriber's minimum priority.
	MinPriority incident.Priority `json:"min_priority,omitempty"`
	// Statuses narrows the subscriber's statuses.
	Statuses []incident.Status `json:"statuses,omitempty"`
	// QuietHours defers non-P1 notifications during a daily window in
	// the subscriber's time zone.
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	// Disabled is set when Herald stopped using the endpoint (HTTP 410,
	// unsubscribe, invalid number); nil while the endpoint is active.
	Disabled *Disabled `json:"disabled,omitempty"`
}

// QuietHours is a daily window, in the subscriber's time zone, during which
// non-P1 notifications on the endpoint are deferred to the window's end.
type QuietHours struct {
	// Start and End are "HH:MM" (24 h). A window may span midnight
	// ("22:00" to "07:00"). Start == End is rejected.
	Start string `json:"start"`
	End   string `json:"end"`
}

// Disabled records why and when an endpoint stopped receiving
// notifications.
type Disabled struct {
	// At is when the endpoint was disabled.
	At time.Time `json:"at"`
	// Reason is a short, secret-free explanation ("HTTP 410 Gone",
	// "unsubscribed").
	Reason string `json:"reason"`
}
