package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/incident"
)

// StatuspagePayload is the body of a Statuspage webhook: an incident (or
// scheduled maintenance) with all its updates, or a component's status
// change.
type StatuspagePayload struct {
	Meta *struct {
		Unsubscribe   string `json:"unsubscribe"`
		Documentation string `json:"documentation"`
		GeneratedAt   string `json:"generated_at"`
	} `json:"meta"`
	Page *StatuspagePage `json:"page"`
	// Incident is set for incident and maintenance notifications.
	Incident *StatuspageIncident `json:"incident"`
	// ComponentUpdate and Component are set for component status
	// changes, which Herald ignores.
	ComponentUpdate json.RawMessage `json:"component_update"`
	Component       json.RawMessage `json:"component"`
}

// StatuspagePage describes the page in webhooks and API answers.
type StatuspagePage struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	URL               string `json:"url"`
	StatusIndicator   string `json:"status_indicator"`
	StatusDescription string `json:"status_description"`
}

// StatuspageIncident is an incident or a scheduled maintenance.
type StatuspageIncident struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// Impact is none, minor, major or critical; ImpactOverride, when
	// set, replaces it.
	Impact         string     `json:"impact"`
	ImpactOverride *string    `json:"impact_override"`
	Shortlink      string     `json:"shortlink"`
	CreatedAt      *time.Time `json:"created_at"`
	// UpdatedAt is when the incident last changed, an edit of its window
	// included.
	UpdatedAt      *time.Time `json:"updated_at"`
	StartedAt      *time.Time `json:"started_at"`
	ResolvedAt     *time.Time `json:"resolved_at"`
	PostmortemBody *string    `json:"postmortem_body"`
	// ScheduledFor and ScheduledUntil are a maintenance's window.
	ScheduledFor   *time.Time           `json:"scheduled_for"`
	ScheduledUntil *time.Time           `json:"scheduled_until"`
	Updates        []StatuspageUpdate   `json:"incident_updates"`
	Components     []StatuspageAffected `json:"components"`
}

// StatuspageUpdate is one update of an incident.
type StatuspageUpdate struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"`
	Body      string     `json:"body"`
	CreatedAt *time.Time `json:"created_at"`
	DisplayAt *time.Time `json:"display_at"`
	// AffectedComponents may be null, or hold entries with a name only
	// ("No components were affected by this update.").
	AffectedComponents   []StatuspageAffected `json:"affected_components"`
	DeliverNotifications *bool                `json:"deliver_notifications"`
}

// StatuspageAffected is a component named by an update (code and name)
// or an incident (id and name).
type StatuspageAffected struct {
	Code      string `json:"code"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	OldStatus string `json:"old_status"`
	NewStatus string `json:"new_status"`
}

// code is the component's Statuspage id, whichever field holds it.
func (a StatuspageAffected) code() string {
	if a.Code != "" {
		return a.Code
	}
	return a.ID
}

// StatuspageList is an answer of the public API: incidents.json holds
// Incidents, scheduled-maintenances.json ScheduledMaintenances.
type StatuspageList struct {
	Page                  *StatuspagePage      `json:"page"`
	Incidents             []StatuspageIncident `json:"incidents"`
	ScheduledMaintenances []StatuspageIncident `json:"scheduled_maintenances"`
}

// PayloadError reports a body that is not a Statuspage payload: malformed
// JSON, or JSON of the wrong shape.
type PayloadError struct {
	// Err is the decoding error.
	Err error
}

// Error describes the problem.
func (e *PayloadError) Error() string { return "not a Statuspage payload: " + e.Err.Error() }

// Unwrap returns the decoding error.
func (e *PayloadError) Unwrap() error { return e.Err }

// ParseStatuspageWebhook decodes a webhook body. Unknown fields are
// accepted (Statuspage adds fields over time); malformed JSON, a body that
// is not one object, and fields of the wrong type are a *[PayloadError].
func ParseStatuspageWebhook(data []byte) (*StatuspagePayload, error) {
	var p StatuspagePayload
	if err := decodeOne(data, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ParseStatuspageList decodes an answer of the public API.
func ParseStatuspageList(data []byte) (*StatuspageList, error) {
	var l StatuspageList
	if err := decodeOne(data, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// decodeOne decodes exactly one JSON object into v.
func decodeOne(data []byte, v any) error {
	data = incident.TrimBOM(data)
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return &PayloadError{Err: errors.New("the body is not a JSON object")}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return &PayloadError{Err: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &PayloadError{Err: errors.New("unexpected data after the JSON object")}
	}
	return nil
}

// Mapping turns Statuspage's terms into Herald's. The zero Mapping maps
// components by the slug of their name and impacts by [DefaultImpact].
type Mapping struct {
	// Components maps a Statuspage component, by code (its id) or by
	// name, to a catalog component id. A component with a code that is
	// not listed maps to the slug of its name ("Nexo terminals" →
	// "nexo-terminals"); an entry with a name only and not listed (such
	// as "No components were affected by this update.") is dropped.
	Components map[string]string
	// Impact maps an impact (none, minor, major, critical, and
	// maintenance, which maintenances have) to a priority; an impact
	// mapped to "" or not mapped gives an unrated event. Defaults to
	// [DefaultImpact]; entries given replace the default ones.
	Impact map[string]incident.Priority
}

// DefaultImpact is the default impact to priority map: critical P1, major
// P2, minor P3, none P4.
func DefaultImpact() map[string]incident.Priority {
	return map[string]incident.Priority{"critical": incident.P1, "major": incident.P2, "minor": incident.P3, "none": incident.P4}
}

// Validate checks the maps: component ids and priorities well formed,
// impacts known.
func (m Mapping) Validate() error {
	for k, v := range m.Components {
		if !incident.ValidComponentID(v) {
			return fmt.Errorf("component map: %q maps to %q, not a component id (lower-case letters, digits and '-')", k, v)
		}
	}
	for k, v := range m.Impact {
		if v != "" && !v.Valid() {
			return fmt.Errorf("impact map: %q maps to %q, want P1, P2, P3, P4 or empty", k, v)
		}
		if !slices.Contains([]string{"none", "minor", "major", "critical", "maintenance"}, k) {
			return fmt.Errorf("impact map: unknown impact %q (none, minor, major, critical, maintenance)", k)
		}
	}
	return nil
}

// priority returns the priority of an impact.
func (m Mapping) priority(impact string) incident.Priority {
	impact = strings.ToLower(strings.TrimSpace(impact))
	if p, ok := m.Impact[impact]; ok {
		return p
	}
	return DefaultImpact()[impact]
}

// component returns the catalog id of a Statuspage component, or "".
func (m Mapping) component(a StatuspageAffected) string {
	if c := a.code(); c != "" {
		if id, ok := m.Components[c]; ok {
			return id
		}
	}
	name := strings.TrimSpace(a.Name)
	if id, ok := m.Components[name]; ok {
		return id
	}
	for k, id := range m.Components {
		if strings.EqualFold(k, name) {
			return id
		}
	}
	if a.code() == "" {
		return "" // a name-only entry: a placeholder, not a component
	}
	return Slug(name)
}

// Slug returns s as a component id: ASCII letters lower-cased, digits
// kept, every other run of characters one '-', at most 64 bytes; "" when
// nothing is left.
func Slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + 'a' - 'A')
			dash = false
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
		if b.Len() >= 64 {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}

// Update is one update of a source, converted to an event. Its Event has
// no sequence yet: the [Store] gives it one when it is first published.
type Update struct {
	// Key identifies the update at the source (the Statuspage update id,
	// a feed entry's revision); it is the event id.
	Key string
	// Event is the update as an event, Sequence unset.
	Event incident.Event
	// At is when the source published the update; updates are published
	// in At order.
	At time.Time
}

// Incident is one incident of a source with its updates, in the order
// they were published.
type Incident struct {
	// ID is the event's incident id.
	ID string
	// Open reports whether the incident (or maintenance) is still open:
	// its latest update does not close it.
	Open bool
	// Updates are the convertible updates, oldest first.
	Updates []Update
	// Problems lists the updates that could not be converted.
	Problems []error
	// ScheduledFor and ScheduledUntil are the window of a maintenance
	// still scheduled (not started, completed or cancelled) as the source
	// shows it now, which the source may have moved without publishing an
	// update: the [Store] then publishes a synthetic update carrying it
	// (see [Store.Publish]). Nil otherwise, and for sources that only
	// know the windows their updates carry.
	ScheduledFor, ScheduledUntil *time.Time
	// ChangedAt is when the source last changed the incident (Statuspage's
	// updated_at), nil when unknown: a payload older than the one a
	// published window came from does not move it back.
	ChangedAt *time.Time
}

// ConvertError reports an update (or an incident) that could not be
// turned into a valid event.
type ConvertError struct {
	// IncidentID and UpdateID identify what failed; UpdateID is empty
	// when the whole incident did.
	IncidentID, UpdateID string
	// Err says why, often incident.FieldErrors.
	Err error
}

// Error names the incident and update.
func (e *ConvertError) Error() string {
	if e.UpdateID == "" {
		return fmt.Sprintf("incident %s: %v", e.IncidentID, e.Err)
	}
	return fmt.Sprintf("incident %s, update %s: %v", e.IncidentID, e.UpdateID, e.Err)
}

// Unwrap returns the cause.
func (e *ConvertError) Unwrap() error { return e.Err }

// maxTitleRunes bounds a title (the event schema's limit).
const maxTitleRunes = 1000

// Convert turns a Statuspage incident or maintenance into events, one per
// update, oldest first. Updates that cannot become a valid event are left
// out and reported in Problems; an incident without a usable id is an
// error.
func (m Mapping) Convert(in *StatuspageIncident) (*Incident, error) {
	if in == nil {
		return nil, &ConvertError{Err: errors.New("no incident")}
	}
	if !incident.ValidIncidentID(in.ID) {
		return nil, &ConvertError{IncidentID: in.ID, Err: errors.New("the incident id is not usable (letters, digits, '-' and '_', at most 128)")}
	}
	out := &Incident{ID: in.ID}
	maintenance := in.ScheduledFor != nil || isMaintenanceStatus(in.Status)
	ups := slices.Clone(in.Updates)
	slices.SortStableFunc(ups, func(a, b StatuspageUpdate) int {
		if c := updateTime(a).Compare(updateTime(b)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	title := oneLine(in.Name)
	impact := in.Impact
	if in.ImpactOverride != nil && *in.ImpactOverride != "" {
		impact = *in.ImpactOverride
	}
	prio := m.priority(impact)
	started := earliest(in.StartedAt, in.CreatedAt)
	for _, u := range ups {
		if t := updateTime(u); !t.IsZero() && (started == nil || t.Before(*started)) {
			started = &t
		}
	}
	incidentComponents := m.components(in.Components, nil)
	seen := map[string]bool{}
	for _, u := range ups {
		if seen[u.ID] {
			continue // the same update twice: keep the first
		}
		seen[u.ID] = true
		ev := incident.Event{
			ID: u.ID, IncidentID: in.ID, Status: m.status(u.Status, maintenance), Priority: prio,
			Components: m.components(u.AffectedComponents, incidentComponents),
			Title:      incident.PlainText(title), Body: incident.PlainText(updateBody(u, in, title)),
			URL: in.Shortlink, StartedAt: started,
		}
		if t := updateTime(u); !t.IsZero() {
			ev.PublishedAt = &t
		}
		if u.DeliverNotifications != nil && !*u.DeliverNotifications {
			f := false
			ev.Notify = &f
		}
		if maintenance {
			ev.ScheduledFor, ev.ScheduledUntil = in.ScheduledFor, in.ScheduledUntil
			// A maintenance completed before its window opened was
			// called off.
			ev.Cancelled = ev.Status == incident.Completed && in.ScheduledFor != nil &&
				ev.PublishedAt != nil && ev.PublishedAt.Before(*in.ScheduledFor)
		}
		if ev.URL != "" && !validURL(ev.URL) {
			ev.URL = "" // a link Herald cannot use is no reason to drop the update
		}
		ev.Sequence = 1 // validated with a placeholder; the Store assigns it
		if err := ev.Validate(); err != nil {
			out.Problems = append(out.Problems, &ConvertError{IncidentID: in.ID, UpdateID: u.ID, Err: err})
			continue
		}
		ev.Sequence = 0
		out.Updates = append(out.Updates, Update{Key: u.ID, Event: ev, At: updateTime(u)})
	}
	if n := len(out.Updates); n > 0 {
		out.Open = !out.Updates[n-1].Event.Status.Closed()
	}
	if st := strings.ToLower(strings.TrimSpace(in.Status)); maintenance && (st == "scheduled" || st == "") &&
		in.ScheduledFor != nil && in.ScheduledUntil != nil {
		out.ScheduledFor, out.ScheduledUntil, out.ChangedAt = in.ScheduledFor, in.ScheduledUntil, in.UpdatedAt
	}
	return out, nil
}

// updateTime is when an update was published: display_at, else
// created_at.
func updateTime(u StatuspageUpdate) time.Time {
	if u.DisplayAt != nil {
		return *u.DisplayAt
	}
	if u.CreatedAt != nil {
		return *u.CreatedAt
	}
	return time.Time{}
}

// updateBody is an update's text: its body, the post-mortem for a
// post-mortem update without one, else the title (an event needs a body).
func updateBody(u StatuspageUpdate, in *StatuspageIncident, title string) string {
	if strings.TrimSpace(u.Body) != "" {
		return u.Body
	}
	if u.Status == "postmortem" && in.PostmortemBody != nil && strings.TrimSpace(*in.PostmortemBody) != "" {
		return *in.PostmortemBody
	}
	return title
}

// components maps entries to catalog ids, after base, without duplicates.
func (m Mapping) components(entries []StatuspageAffected, base []string) []string {
	out := slices.Clone(base)
	for _, a := range entries {
		if id := m.component(a); id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// status maps a Statuspage status to Herald's. An unknown status becomes
// investigating (in_progress for a maintenance): notifying with a
// coarser status beats losing the update.
func (m Mapping) status(s string, maintenance bool) incident.Status {
	switch s = strings.ToLower(strings.TrimSpace(s)); s {
	case "investigating", "identified", "monitoring", "resolved", "postmortem", "scheduled", "in_progress", "completed":
		return incident.Status(s)
	case "verifying":
		return incident.InProgress
	}
	if maintenance {
		return incident.InProgress
	}
	return incident.Investigating
}

func isMaintenanceStatus(s string) bool {
	switch s {
	case "scheduled", "in_progress", "verifying", "completed":
		return true
	}
	return false
}

// earliest returns the earliest of the non-nil times, or nil.
func earliest(ts ...*time.Time) *time.Time {
	var out *time.Time
	for _, t := range ts {
		if t != nil && (out == nil || t.Before(*out)) {
			out = t
		}
	}
	return out
}

// oneLine returns s on one line, spaces collapsed, cut to the schema's
// title limit.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxTitleRunes {
		r := []rune(s)
		s = string(r[:maxTitleRunes-1]) + "…"
	}
	return s
}

// validURL reports whether s is an absolute http(s) URL the schema
// accepts.
func validURL(s string) bool {
	ev := incident.Event{URL: s}
	err := ev.Validate()
	var fe incident.FieldErrors
	if !errors.As(err, &fe) {
		return true
	}
	for _, f := range fe {
		if f.Field == "url" {
			return false
		}
	}
	return true
}
