package subscribers

import (
	"encoding/json"
	"slices"
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
	// Paused stops every notification to the subscriber until it is
	// cleared; nothing else changes.
	Paused bool `json:"paused,omitempty"`
	// Follow, when set, makes the subscriber a follower of one incident
	// only: it receives that incident's updates (whatever its components,
	// priority and statuses) and nothing else, until the incident is
	// resolved.
	Follow *Follow `json:"follow,omitempty"`
}

// Follow is a subscription to one incident.
type Follow struct {
	// IncidentID is the incident followed.
	IncidentID string `json:"incident_id"`
	// EndedAfter is, once the incident was resolved (or its postmortem
	// published), the sequence of that update: the follower receives it
	// and nothing later. Zero while the subscription runs.
	EndedAfter int64 `json:"ended_after,omitempty"`
	// EndedAt is when the subscription ended.
	EndedAt *time.Time `json:"ended_at,omitempty"`
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
	// Pending is set on an address its owner has not confirmed yet
	// (double opt-in of the public pages); nothing but the confirmation is
	// sent to it until then. Endpoints written by operators need no
	// confirmation.
	Pending *Pending `json:"pending,omitempty"`
	// PreviousSecret is the webhook signing secret replaced by a rotation,
	// still signing (beside Secret) until PreviousSecretUntil, so that
	// receivers can switch without losing a notification.
	PreviousSecret      secret.Value `json:"previous_secret,omitempty"`
	PreviousSecretUntil *time.Time   `json:"previous_secret_until,omitempty"`
}

// Pending records an address awaiting its owner's confirmation.
type Pending struct {
	// Since is when the address was given.
	Since time.Time `json:"since"`
}

// Active reports whether the endpoint receives notifications: neither
// disabled nor awaiting confirmation.
func (e *Endpoint) Active() bool { return e.Disabled == nil && e.Pending == nil }

// SigningSecret returns the secret webhooks to the endpoint are signed
// with at now: Secret, followed during a rotation's overlap by the previous
// secret (space-separated; the receiver accepts either signature).
func (e *Endpoint) SigningSecret(now time.Time) secret.Value {
	if e.PreviousSecret.IsZero() || e.PreviousSecretUntil == nil || !now.Before(*e.PreviousSecretUntil) {
		return e.Secret
	}
	return secret.Value(e.Secret.Reveal() + " " + e.PreviousSecret.Reveal())
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

// Endpoint returns the endpoint with the given id, or nil.
func (s *Subscriber) Endpoint(id string) *Endpoint {
	for i := range s.Endpoints {
		if s.Endpoints[i].ID == id {
			return &s.Endpoints[i]
		}
	}
	return nil
}

// Clone returns a deep copy of s.
func (s *Subscriber) Clone() *Subscriber {
	c := *s
	c.Components = slices.Clone(s.Components)
	c.Statuses = slices.Clone(s.Statuses)
	c.Endpoints = slices.Clone(s.Endpoints)
	for i := range c.Endpoints {
		ep := &c.Endpoints[i]
		ep.Components = slices.Clone(ep.Components)
		ep.Statuses = slices.Clone(ep.Statuses)
		if ep.QuietHours != nil {
			q := *ep.QuietHours
			ep.QuietHours = &q
		}
		if ep.Disabled != nil {
			d := *ep.Disabled
			ep.Disabled = &d
		}
		if ep.Pending != nil {
			p := *ep.Pending
			ep.Pending = &p
		}
		if ep.PreviousSecretUntil != nil {
			u := *ep.PreviousSecretUntil
			ep.PreviousSecretUntil = &u
		}
	}
	if s.Follow != nil {
		f := *s.Follow
		if f.EndedAt != nil {
			at := *f.EndedAt
			f.EndedAt = &at
		}
		c.Follow = &f
	}
	return &c
}

// Target returns where the endpoint delivers: the email address, the phone
// number, the webhook URL, or the Slack incoming-webhook URL or channel id.
// The Slack webhook URL is a credential: never log the result for Slack.
func (e *Endpoint) Target() string {
	switch e.Channel {
	case channelWebhook:
		return e.URL
	case channelSlack:
		if !e.WebhookURL.IsZero() {
			return e.WebhookURL.Reveal()
		}
		return e.SlackChannel
	default:
		return e.Address
	}
}

// Window reports whether now falls in the quiet hours, read in loc (nil
// means UTC), and if so when they end. A window whose end is before its
// start spans midnight. Around a daylight-saving change the end is the
// next wall-clock End that exists.
func (q *QuietHours) Window(now time.Time, loc *time.Location) (bool, time.Time) {
	if q == nil {
		return false, time.Time{}
	}
	start, err1 := clock(q.Start)
	end, err2 := clock(q.End)
	if err1 != nil || err2 != nil || start == end {
		return false, time.Time{}
	}
	if loc == nil {
		loc = time.UTC
	}
	local := now.In(loc)
	m := local.Hour()*60 + local.Minute()
	var inside bool
	if start < end {
		inside = m >= start && m < end
	} else {
		inside = m >= start || m < end
	}
	if !inside {
		return false, time.Time{}
	}
	day := local
	if start > end && m >= start {
		day = local.AddDate(0, 0, 1)
	}
	until := time.Date(day.Year(), day.Month(), day.Day(), end/60, end%60, 0, 0, loc)
	if !until.After(now) {
		until = now.Add(time.Minute)
	}
	return true, until
}

// View is the form of a subscriber shown to operators and to the API: every
// field, with secrets masked ("whsec_…Xy9z").
type View struct {
	Subscriber
	Endpoints []EndpointView `json:"endpoints"`
}

// EndpointView is an endpoint with its secrets masked.
type EndpointView struct {
	Endpoint
	// Secret, PreviousSecret and WebhookURL are masked.
	Secret         string `json:"secret,omitempty"`
	PreviousSecret string `json:"previous_secret,omitempty"`
	WebhookURL     string `json:"webhook_url,omitempty"`
}

// Redacted returns the subscriber as operators may see it: secrets masked.
func (s *Subscriber) Redacted() View {
	v := View{Subscriber: *s, Endpoints: make([]EndpointView, len(s.Endpoints))}
	for i, ep := range s.Endpoints {
		v.Endpoints[i] = EndpointView{Endpoint: ep, Secret: ep.Secret.Masked(), PreviousSecret: ep.PreviousSecret.Masked(), WebhookURL: ep.WebhookURL.Masked()}
	}
	return v
}

// stored is the form kept in the KV bucket: secrets in clear (the bucket is
// the secrets' home; access to it is access to NATS).
type stored struct {
	Subscriber
	Endpoints []storedEndpoint `json:"endpoints"`
}

type storedEndpoint struct {
	Endpoint
	Secret         string `json:"secret,omitempty"`
	PreviousSecret string `json:"previous_secret,omitempty"`
	WebhookURL     string `json:"webhook_url,omitempty"`
}

func encode(s *Subscriber) ([]byte, error) {
	st := stored{Subscriber: *s, Endpoints: make([]storedEndpoint, len(s.Endpoints))}
	for i, ep := range s.Endpoints {
		st.Endpoints[i] = storedEndpoint{Endpoint: ep, Secret: ep.Secret.Reveal(), PreviousSecret: ep.PreviousSecret.Reveal(), WebhookURL: ep.WebhookURL.Reveal()}
	}
	return json.Marshal(&st)
}

func decode(data []byte) (*Subscriber, error) {
	var st stored
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	s := st.Subscriber
	s.Endpoints = make([]Endpoint, len(st.Endpoints))
	for i, ep := range st.Endpoints {
		s.Endpoints[i] = ep.Endpoint
		s.Endpoints[i].Secret = secret.Value(ep.Secret)
		s.Endpoints[i].PreviousSecret = secret.Value(ep.PreviousSecret)
		s.Endpoints[i].WebhookURL = secret.Value(ep.WebhookURL)
	}
	return &s, nil
}
