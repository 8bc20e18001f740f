package incident

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// DefaultMaxBytes is the default size limit of one encoded event (256 KiB).
const DefaultMaxBytes = 256 << 10

// Limits on individual fields.
const (
	maxIDLen        = 200
	maxIncidentID   = 128
	maxTitleRunes   = 1000
	maxComponents   = 256
	maxComponentLen = 64
	maxURLLen       = 2048
)

// Event is one update of an incident, as published by the status page.
//
// The zero value is not valid; build events in code or with [Decode] and
// check them with [Event.Validate].
type Event struct {
	// ID identifies this update; it is the JetStream Nats-Msg-Id, so a
	// re-published update is recognised. Required.
	ID string `json:"id"`
	// IncidentID groups the updates of one incident. Letters, digits, '-'
	// and '_' only: it is part of NATS subjects. Required.
	IncidentID string `json:"incident_id"`
	// Sequence orders the updates of an incident, starting at 1. Required.
	Sequence int64 `json:"sequence"`
	// Status is the incident's status after this update. Required.
	Status Status `json:"status"`
	// Priority is the severity, P1 (most severe) to P4. Optional.
	Priority Priority `json:"priority,omitempty"`
	// Components lists the affected component ids; empty means the whole
	// platform.
	Components []string `json:"components"`
	// Title is the update's title, one (possibly multilingual) string or
	// one text per locale. Required.
	Title Text `json:"title"`
	// Body is the update's text, same forms as Title. Required.
	Body Text `json:"body"`
	// URL links to the incident on the status page. Optional, http(s).
	URL string `json:"url,omitempty"`
	// StartedAt is when the incident started. Optional.
	StartedAt *time.Time `json:"started_at,omitempty"`
	// PublishedAt is when this update was published. Optional.
	PublishedAt *time.Time `json:"published_at,omitempty"`
	// Notify, when false, records the update without notifying anyone
	// (the operator's "quiet fix"). Defaults to true.
	Notify *bool `json:"notify,omitempty"`
	// ScheduledFor and ScheduledUntil are the window of a maintenance:
	// when it starts and when it is planned to end. Optional, but both are
	// required when Status is scheduled, and one is never given without
	// the other; ScheduledUntil is after ScheduledFor. A later update of
	// the same maintenance carrying another window has moved it.
	ScheduledFor   *time.Time `json:"scheduled_for,omitempty"`
	ScheduledUntil *time.Time `json:"scheduled_until,omitempty"`
	// Cancelled marks a maintenance called off: its update has status
	// completed and the window it no longer holds. Defaults to false.
	Cancelled bool `json:"cancelled,omitempty"`
}

// IsMaintenance reports whether the update is about a scheduled
// maintenance: it carries a window.
func (e *Event) IsMaintenance() bool { return e.ScheduledFor != nil }

// ShouldNotify reports whether subscribers are to be notified of this update.
func (e *Event) ShouldNotify() bool { return e.Notify == nil || *e.Notify }

// Text is a title or body: either one string, which may hold several
// languages as the status page writes them, or one text per locale.
type Text struct {
	// Plain is the single-string form. Empty when ByLocale is used.
	Plain string
	// ByLocale maps a BCP 47 tag ("fr", "en-GB") to the text in that
	// language. Nil when Plain is used.
	ByLocale map[string]string
}

// PlainText returns a Text holding one string.
func PlainText(s string) Text { return Text{Plain: s} }

// LocalizedText returns a Text holding one text per locale.
func LocalizedText(m map[string]string) Text { return Text{ByLocale: m} }

// IsZero reports whether the text holds nothing.
func (t Text) IsZero() bool { return t.Plain == "" && len(t.ByLocale) == 0 }

// Locales returns the locales of a per-locale text, sorted; nil for a plain
// text.
func (t Text) Locales() []string {
	if t.ByLocale == nil {
		return nil
	}
	out := make([]string, 0, len(t.ByLocale))
	for k := range t.ByLocale {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// String returns the plain text, or all localized texts joined in locale
// order, so that nothing is hidden from a reader of logs.
func (t Text) String() string {
	if t.ByLocale == nil {
		return t.Plain
	}
	var b strings.Builder
	for i, k := range t.Locales() {
		if i > 0 {
			b.WriteString(" / ")
		}
		b.WriteString(t.ByLocale[k])
	}
	return b.String()
}

// MarshalJSON encodes a plain text as a JSON string and a localized text as
// an object.
func (t Text) MarshalJSON() ([]byte, error) {
	if t.ByLocale != nil {
		return json.Marshal(t.ByLocale)
	}
	return json.Marshal(t.Plain)
}

// UnmarshalJSON accepts a JSON string or an object of strings.
func (t *Text) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) > 0 && data[0] == '"':
		t.ByLocale = nil
		return json.Unmarshal(data, &t.Plain)
	case len(data) > 0 && data[0] == '{':
		var m map[string]string
		if err := json.Unmarshal(data, &m); err != nil {
			return errors.New("must be a string or an object of strings per locale")
		}
		t.Plain, t.ByLocale = "", m
		if t.ByLocale == nil {
			t.ByLocale = map[string]string{}
		}
		return nil
	default:
		return errors.New("must be a string or an object of strings per locale")
	}
}

// FieldError is one validation problem, naming the JSON field at fault.
type FieldError struct {
	// Field is the JSON path of the field, e.g. "status" or "components[2]".
	Field string `json:"field"`
	// Message says what is wrong, e.g. "must be >= 1".
	Message string `json:"message"`

	// more counts the problems past MaxFieldErrors, on the last entry.
	more int
}

// Error returns "field: message".
func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors lists the validation problems of an event (or a
// subscriber): every one up to [MaxFieldErrors], then one last entry,
// field "(more)", counting the others.
type FieldErrors []FieldError

// MaxFieldErrors bounds the problems a [FieldErrors] lists, so that a
// document with thousands of bad values gets a short answer and costs
// little memory.
const MaxFieldErrors = 100

// moreField names the entry that counts the problems past MaxFieldErrors.
const moreField = "(more)"

// Addf appends the problem of field, its message formatted from format
// and args; past [MaxFieldErrors] problems it only counts them.
func (fe *FieldErrors) Addf(field, format string, args ...any) {
	switch n := len(*fe); {
	case n < MaxFieldErrors:
		*fe = append(*fe, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	case n == MaxFieldErrors:
		*fe = append(*fe, FieldError{Field: moreField, Message: "1 more problem not listed", more: 1})
	default:
		last := &(*fe)[n-1]
		last.more++
		last.Message = fmt.Sprintf("%d more problems not listed", last.more)
	}
}

// Error joins the problems with "; ".
func (fe FieldErrors) Error() string {
	parts := make([]string, len(fe))
	for i, e := range fe {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// TooLargeError reports an encoded event over the size limit.
type TooLargeError struct {
	// Size is the size seen, in bytes; it may be a lower bound when the
	// input was read from a stream.
	Size int
	// Limit is the configured maximum.
	Limit int
}

// Error returns a message naming both sizes.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("event is %d bytes, over the limit of %d bytes", e.Size, e.Limit)
}

// Decode parses one JSON event strictly (unknown fields, keys that differ
// from the field names by case, repeated keys and trailing data are
// rejected; a leading UTF-8 byte order mark is skipped) and validates it.
// maxBytes <= 0 means [DefaultMaxBytes].
//
// Errors are a *[TooLargeError], or [FieldErrors] for syntax, type and
// validation problems.
func Decode(data []byte, maxBytes int) (*Event, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(data) > maxBytes {
		return nil, &TooLargeError{Size: len(data), Limit: maxBytes}
	}
	var ev Event
	var fe FieldErrors
	switch err := DecodeStrict(data, &ev); {
	case errors.Is(err, ErrTrailingData):
		return nil, FieldErrors{{Field: "(event)", Message: err.Error()}}
	case errors.As(err, &fe):
		return nil, fe
	case err != nil:
		return nil, FieldErrors{jsonError(err)}
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return &ev, nil
}

// jsonError turns an encoding/json error into a FieldError naming the field
// where possible.
func jsonError(err error) FieldError {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(event)"
		}
		return FieldError{Field: field, Message: "must be " + jsonKind(te.Type.String())}
	case errors.As(err, &se):
		return FieldError{Field: "(event)", Message: fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)}
	case errors.Is(err, io.EOF):
		return FieldError{Field: "(event)", Message: "empty input"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Field: "(event)", Message: "truncated JSON"}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return FieldError{Field: strings.Trim(f, `"`), Message: "unknown field"}
	}
	// Errors returned by a field's UnmarshalJSON carry no field name in
	// encoding/json v1; title and body are the only such fields.
	if strings.Contains(msg, "per locale") {
		return FieldError{Field: "title/body", Message: msg}
	}
	if strings.Contains(msg, "parsing time") {
		return FieldError{Field: "started_at/published_at", Message: "must be an RFC 3339 timestamp"}
	}
	return FieldError{Field: "(event)", Message: msg}
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case goType == "string" || strings.HasSuffix(goType, "Status") || strings.HasSuffix(goType, "Priority"):
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "bool" || goType == "*bool":
		return "a boolean"
	}
	return "of type " + goType
}

var incidentIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ValidIncidentID reports whether s may be used as an incident id: letters,
// digits, '-' and '_', at most 128 bytes.
func ValidIncidentID(s string) bool {
	return s != "" && len(s) <= maxIncidentID && incidentIDPattern.MatchString(s)
}

// ValidComponentID reports whether s is a well-formed component id:
// lower-case letters, digits and '-', starting with a letter or digit.
func ValidComponentID(s string) bool {
	if s == "" || len(s) > maxComponentLen || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Validate checks every field and returns [FieldErrors] listing all problems,
// or nil.
func (e *Event) Validate() error {
	var fe FieldErrors
	switch {
	case e.ID == "":
		fe.Addf("id", "is required")
	case len(e.ID) > maxIDLen:
		fe.Addf("id", "must be at most %d bytes", maxIDLen)
	case !printableNoSpace(e.ID):
		fe.Addf("id", "must be printable text without spaces")
	}
	switch {
	case e.IncidentID == "":
		fe.Addf("incident_id", "is required")
	case !ValidIncidentID(e.IncidentID):
		fe.Addf("incident_id", "must be 1 to %d letters, digits, '-' or '_'", maxIncidentID)
	}
	if e.Sequence < 1 {
		fe.Addf("sequence", "must be >= 1")
	}
	switch {
	case e.Status == "":
		fe.Addf("status", "is required")
	case !e.Status.Valid():
		fe.Addf("status", "must be one of %s", strings.Join(statusNames(), ", "))
	}
	if e.Priority != "" && !e.Priority.Valid() {
		fe.Addf("priority", "must be one of P1, P2, P3, P4")
	}
	if len(e.Components) > maxComponents {
		fe.Addf("components", "must list at most %d components", maxComponents)
	}
	seen := make(map[string]bool, len(e.Components))
	for i, c := range e.Components {
		field := fmt.Sprintf("components[%d]", i)
		switch {
		case !ValidComponentID(c):
			fe.Addf(field, "must be a component id (lower-case letters, digits and '-')")
		case seen[c]:
			fe.Addf(field, "duplicate component %q", c)
		}
		seen[c] = true
	}
	validateText(&fe, "title", e.Title, maxTitleRunes)
	validateText(&fe, "body", e.Body, 0)
	if e.URL != "" {
		if err := validateLink(e.URL); err != nil {
			fe.Addf("url", "%v", err)
		}
	}
	if e.StartedAt != nil && e.PublishedAt != nil && e.PublishedAt.Before(*e.StartedAt) {
		fe.Addf("published_at", "must not be before started_at")
	}
	e.validateWindow(&fe)
	if len(fe) == 0 {
		return nil
	}
	return fe
}

// validateWindow checks the maintenance window and the cancellation mark.
func (e *Event) validateWindow(fe *FieldErrors) {
	switch {
	case e.ScheduledFor == nil && e.ScheduledUntil == nil:
		if e.Status == Scheduled {
			fe.Addf("scheduled_for", "is required when status is scheduled")
			fe.Addf("scheduled_until", "is required when status is scheduled")
		}
	case e.ScheduledFor == nil:
		fe.Addf("scheduled_for", "is required with scheduled_until")
	case e.ScheduledUntil == nil:
		fe.Addf("scheduled_until", "is required with scheduled_for")
	case !e.ScheduledUntil.After(*e.ScheduledFor):
		fe.Addf("scheduled_until", "must be after scheduled_for")
	}
	if e.Cancelled {
		switch {
		case e.ScheduledFor == nil:
			fe.Addf("cancelled", "is only for a maintenance (with scheduled_for and scheduled_until)")
		case e.Status != Completed:
			fe.Addf("cancelled", "requires status completed")
		}
	}
}

func validateText(fe *FieldErrors, field string, t Text, maxRunes int) {
	check := func(f, s string) {
		switch {
		case strings.TrimSpace(s) == "":
			fe.Addf(f, "is required")
		case !utf8.ValidString(s):
			fe.Addf(f, "must be valid UTF-8")
		case maxRunes > 0 && utf8.RuneCountInString(s) > maxRunes:
			fe.Addf(f, "must be at most %d characters", maxRunes)
		case maxRunes > 0 && strings.ContainsAny(s, "\r\n"):
			fe.Addf(f, "must be a single line")
		}
	}
	if t.ByLocale == nil {
		check(field, t.Plain)
		return
	}
	if len(t.ByLocale) == 0 {
		fe.Addf(field, "is required")
		return
	}
	for _, loc := range t.Locales() {
		f := field + "." + loc
		if _, err := language.Parse(loc); err != nil || loc == "" {
			fe.Addf(f, "is not a BCP 47 language tag")
			continue
		}
		check(f, t.ByLocale[loc])
	}
}

func validateLink(s string) error {
	if len(s) > maxURLLen {
		return fmt.Errorf("must be at most %d bytes", maxURLLen)
	}
	if i := strings.IndexFunc(s, notURLChar); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Errorf("must not contain %q (percent-encode it)", r)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return errors.New("must be an absolute http(s) URL")
	}
	if u.User != nil {
		return errors.New("must not carry credentials")
	}
	return nil
}

// notURLChar reports whether r may not appear raw in a link Herald puts in
// messages: outside RFC 3986's unreserved and reserved characters and '%',
// and the quote, which closes HTML attributes and Markdown links.
func notURLChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("-._~:/?#[]@!$&()*+,;=%", r)
}

func printableNoSpace(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Status is the state of an incident after an update.
type Status string

// The statuses of incidents (investigating → resolved) and of maintenance
// (scheduled → completed), and the post-mortem.
const (
	Investigating Status = "investigating"
	Identified    Status = "identified"
	Monitoring    Status = "monitoring"
	Resolved      Status = "resolved"
	Postmortem    Status = "postmortem"
	Scheduled     Status = "scheduled"
	InProgress    Status = "in_progress"
	Completed     Status = "completed"
)

// statuses lists every valid status, in lifecycle order; the position is
// the status's Index.
var statuses = []Status{Investigating, Identified, Monitoring, Resolved, Postmortem, Scheduled, InProgress, Completed}

// Statuses returns every valid status, in lifecycle order.
func Statuses() []Status { return slices.Clone(statuses) }

func statusNames() []string {
	out := make([]string, len(statuses))
	for i, s := range statuses {
		out[i] = string(s)
	}
	return out
}

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool { return s.Index() >= 0 }

// Index returns the position of s in [Statuses], or -1. It is stable and
// below 8, so a set of statuses fits in a byte.
func (s Status) Index() int { return slices.Index(statuses, s) }

// Closed reports whether the status ends the incident or maintenance
// (resolved, postmortem, completed).
func (s Status) Closed() bool { return s == Resolved || s == Postmortem || s == Completed }

// Priority is an incident's severity: P1 (most severe) to P4.
type Priority string

// The priorities, most severe first.
const (
	P1 Priority = "P1"
	P2 Priority = "P2"
	P3 Priority = "P3"
	P4 Priority = "P4"
)

// Valid reports whether p is P1, P2, P3 or P4.
func (p Priority) Valid() bool { return p.Rank() > 0 }

// Rank returns 1 for P1 through 4 for P4, and 0 for an empty or invalid
// priority.
func (p Priority) Rank() int {
	if len(p) == 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '4' {
		return int(p[1] - '0')
	}
	return 0
}

// AtLeast reports whether p is at least as severe as min. An empty min
// accepts everything; an empty p counts as P4, the least severe (callers that
// rate unrated events differently substitute their own priority first).
func (p Priority) AtLeast(min Priority) bool {
	if min.Rank() == 0 {
		return true
	}
	r := p.Rank()
	if r == 0 {
		r = 4
	}
	return r <= min.Rank()
}
