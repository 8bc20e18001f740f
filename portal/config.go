package portal

import (
	"errors"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

// Limit is a number of requests per window.
type Limit struct {
	// N is how many; 0 turns the limit off.
	N int64
	// Per is the window.
	Per time.Duration
}

// Limits are the rate limits of the public pages.
type Limits struct {
	// IP bounds the forms sent from one client address. Defaults to 30
	// per 10 minutes.
	IP Limit
	// Address bounds the messages (confirmations, links, codes) sent to
	// one email address or phone number. Defaults to 5 per hour.
	Address Limit
	// PhonePrefix bounds the SMS sent to the numbers sharing all but their
	// last PrefixDigits digits (SMS pumping walks number ranges). Defaults
	// to 10 per hour.
	PhonePrefix Limit
	// PrefixDigits is how many trailing digits the prefix leaves out.
	// Defaults to 4.
	PrefixDigits int
}

// Config configures the portal. Every field but PublicURL has a default.
type Config struct {
	// PublicURL is where the pages are served from, as links name them
	// ("https://status.example.com"). Required.
	PublicURL string
	// Catalog names the components (checkboxes, localized). Defaults to
	// the dispatcher's catalog of incident.DefaultComponents.
	Catalog *incident.Catalog
	// Rules validate what merchants write, as the admin API does.
	Rules subscribers.Rules
	// ConfirmTTL is how long an email confirmation link works. Defaults
	// to 7 days.
	ConfirmTTL time.Duration
	// LoginTTL is how long a preference-centre link asked for on /manage
	// works (once). Defaults to 1 hour.
	LoginTTL time.Duration
	// CodeTTL is how long an SMS confirmation code works. Defaults to 10
	// minutes.
	CodeTTL time.Duration
	// CodeTries is how many wrong codes are allowed. Defaults to 5.
	CodeTries int
	// SessionTTL is how long a preference-centre session lasts. Defaults
	// to 1 hour.
	SessionTTL time.Duration
	// SecretOverlap is how long a rotated webhook secret keeps signing
	// beside the new one. Defaults to 24 hours.
	SecretOverlap time.Duration
	// FollowRetention is how long a follower of a resolved incident is
	// kept (its last notification may still be retried) before it is
	// erased. Defaults to 7 days.
	FollowRetention time.Duration
	// Limits are the rate limits.
	Limits Limits
	// Timezones offered on the forms. Defaults to a list of European
	// zones and UTC.
	Timezones []string
	// TrustProxyHeaders takes the client address from X-Forwarded-For
	// (the last address, added by the proxy in front) instead of the
	// connection. Defaults to false.
	TrustProxyHeaders bool
	// Replicas of the portal's buckets. Defaults to 1.
	Replicas int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger receives the portal's logs. Defaults to none.
	Logger *slog.Logger
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ConfirmTTL, 7*24*time.Hour)
	def(&c.LoginTTL, time.Hour)
	def(&c.CodeTTL, 10*time.Minute)
	def(&c.SessionTTL, time.Hour)
	def(&c.SecretOverlap, 24*time.Hour)
	def(&c.FollowRetention, 7*24*time.Hour)
	if c.CodeTries <= 0 {
		c.CodeTries = 5
	}
	lim := func(l *Limit, n int64, per time.Duration) {
		if l.N == 0 && l.Per == 0 {
			*l = Limit{N: n, Per: per}
		}
		if l.Per <= 0 {
			l.Per = per
		}
	}
	lim(&c.Limits.IP, 30, 10*time.Minute)
	lim(&c.Limits.Address, 5, time.Hour)
	lim(&c.Limits.PhonePrefix, 10, time.Hour)
	if c.Limits.PrefixDigits <= 0 {
		c.Limits.PrefixDigits = 4
	}
	if len(c.Timezones) == 0 {
		c.Timezones = []string{"Europe/Paris", "Europe/Rome", "Europe/Brussels", "Europe/Zurich", "Europe/Luxembourg",
			"Europe/Madrid", "Europe/Berlin", "Europe/London", "Europe/Lisbon", "UTC"}
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("portal: the public URL must be an absolute http(s) URL")
	}
	for _, l := range []Limit{c.Limits.IP, c.Limits.Address, c.Limits.PhonePrefix} {
		if l.N < 0 {
			return errors.New("portal: rate limits must not be negative")
		}
	}
	for _, tz := range c.Timezones {
		if _, err := subscribers.LoadLocation(tz); err != nil {
			return errors.New("portal: unknown time zone " + tz)
		}
	}
	return nil
}

// Deps are the portal's collaborators.
type Deps struct {
	// Dispatcher is the engine: subscribers, notices, links, SMS caps.
	// Required.
	Dispatcher *dispatcher.Dispatcher
	// JetStream keeps the portal's state (codes, sessions, used links,
	// rate limits). Required.
	JetStream jetstream.JetStream
	// Webhook sends the test events of merchants' webhooks (the same
	// channel, with the same SSRF guard, as notifications). Required.
	Webhook channels.Channel
}
