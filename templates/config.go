package templates

import (
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald/incident"
	"golang.org/x/text/language"
)

// Config configures a [Renderer].
type Config struct {
	// Dir is an optional directory of overrides (--templates DIR). Any
	// embedded file can be replaced by a file of the same name: the
	// templates (email.subject.tmpl, email.txt.tmpl, email.html.tmpl,
	// sms.txt.tmpl, notice.subject.tmpl, notice.txt.tmpl,
	// notice.html.tmpl) and the message catalogs (fr.toml, en.toml,
	// it.toml). A catalog override only needs the keys it changes; a
	// catalog for a new locale ("de.toml") must hold every key. Unknown
	// files are rejected, and so is any file that does not parse or
	// render: New reports the file and line. Defaults to none.
	Dir string
	// Components gives the display names of components per locale.
	// Defaults to the catalog of [incident.DefaultComponents].
	Components *incident.Catalog
	// Fallback is the chain of locales used for subscribers whose locale
	// matches none of the supported ones, and for updates that have no
	// text in the matched locale. Defaults to ["en", "fr"].
	Fallback []string
	// SMSSegments is the SMS budget in segments. Defaults to 2.
	SMSSegments int
	// PublicURL is the base URL of Herald's public endpoints
	// (unsubscribe pages). Its host names the List-Id of emails.
	// Defaults to none.
	PublicURL string
	// StatusPageURL is linked when an update carries no url of its own.
	// Defaults to none (no link).
	StatusPageURL string
	// ListID is the List-Id header of emails ("Incident notifications
	// <incidents.status.example.com>"; a bare id is put in angle
	// brackets). Defaults to "Incident notifications <incidents.HOST>"
	// with the host of PublicURL, or no List-Id when PublicURL is empty.
	ListID string
	// UnsubscribeMailto is the address of the mailto: form of
	// List-Unsubscribe ("unsubscribe@status.example.com"). Defaults to
	// none (https form only).
	UnsubscribeMailto string
	// CalendarOrganizer is the ORGANIZER of the iCalendar event attached
	// to maintenance emails: an email address, usually the From of
	// emails ("Status <status@example.com>" or a bare address). Defaults
	// to none.
	CalendarOrganizer string
	// CalendarDomain ends the UID of a maintenance's calendar event,
	// "<incident id>@<domain>", which must never change for a
	// maintenance. Defaults to the host of PublicURL, else "herald".
	CalendarDomain string
	// MaxBodyRunes caps the body of emails and Slack messages, in
	// characters; longer bodies are cut on a block or word boundary and
	// end with a link to the full update. Defaults to 12000.
	MaxBodyRunes int
	// CacheSize is the number of rendered messages kept (one per update,
	// locale, channel, time zone and recipient shape). Defaults to 4096.
	CacheSize int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger receives warnings. Defaults to a logger that discards.
	Logger *slog.Logger
}

// Default values of Config fields.
const (
	// DefaultSMSSegments is the default SMS budget, in segments.
	DefaultSMSSegments = 2
	// DefaultMaxBodyRunes is the default cap of email and Slack bodies.
	DefaultMaxBodyRunes = 12000
	// DefaultCacheSize is the default number of cached renderings.
	DefaultCacheSize = 4096
)

// DefaultFallback is the default fallback chain.
var DefaultFallback = []string{"en", "fr"}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Components == nil {
		c.Components, _ = incident.NewCatalog(incident.DefaultComponents())
	}
	if len(c.Fallback) == 0 {
		c.Fallback = append([]string(nil), DefaultFallback...)
	}
	if c.SMSSegments == 0 {
		c.SMSSegments = DefaultSMSSegments
	}
	if c.MaxBodyRunes == 0 {
		c.MaxBodyRunes = DefaultMaxBodyRunes
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.ListID == "" && c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err == nil && u.Hostname() != "" {
			c.ListID = "Incident notifications <incidents." + u.Hostname() + ">"
		}
	}
	if c.CalendarDomain == "" {
		c.CalendarDomain = "herald"
		if u, err := url.Parse(c.PublicURL); err == nil && u.Hostname() != "" {
			c.CalendarDomain = u.Hostname()
		}
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
	var errs []error
	for _, f := range c.Fallback {
		if _, err := language.Parse(f); err != nil {
			errs = append(errs, fmt.Errorf("fallback: %q is not a language tag", f))
		}
	}
	if c.SMSSegments < 1 || c.SMSSegments > 10 {
		errs = append(errs, fmt.Errorf("sms segments: %d is not between 1 and 10", c.SMSSegments))
	}
	if c.MaxBodyRunes < 500 {
		errs = append(errs, fmt.Errorf("max body runes: %d is below 500", c.MaxBodyRunes))
	}
	if c.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("cache size: %d is negative", c.CacheSize))
	}
	if c.PublicURL != "" && !safeURL(c.PublicURL) {
		errs = append(errs, errors.New("public url: must be an absolute http(s) URL"))
	}
	if c.StatusPageURL != "" && !safeURL(c.StatusPageURL) {
		errs = append(errs, errors.New("status page url: must be an absolute http(s) URL"))
	}
	if strings.ContainsAny(c.ListID, "\r\n") {
		errs = append(errs, errors.New("list id: must be one line"))
	}
	if c.CalendarOrganizer != "" {
		if _, err := mail.ParseAddress(c.CalendarOrganizer); err != nil {
			errs = append(errs, errors.New("calendar organizer: must be an email address"))
		}
	}
	if strings.ContainsFunc(c.CalendarDomain, func(r rune) bool { return r <= ' ' || r == '@' || r == 0x7f }) {
		errs = append(errs, errors.New("calendar domain: must be a host name"))
	}
	if c.UnsubscribeMailto != "" {
		if a, err := mail.ParseAddress(c.UnsubscribeMailto); err != nil || a.Name != "" || strings.ContainsAny(c.UnsubscribeMailto, "<>?\r\n") {
			errs = append(errs, errors.New("unsubscribe mailto: must be a bare email address"))
		}
	}
	return errors.Join(errs...)
}
