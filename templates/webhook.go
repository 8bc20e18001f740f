package templates

import (
	"bytes"
	"encoding/json"
	"maps"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/incident"
)

// WebhookSchemaVersion is the version of the webhook payload's data
// object (data.schema_version). It changes only when a field is removed
// or changes meaning; new fields may appear within a version.
const WebhookSchemaVersion = 1

// WebhookMaxBytes is the size a webhook payload is kept under: longer
// bodies are cut, with the link to the full update.
const WebhookMaxBytes = 20000

// WebhookTypeUpdate is the type of incident-update payloads.
const WebhookTypeUpdate = "incident.updated"

// webhookPayload follows the Standard Webhooks payload convention.
type webhookPayload struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

type webhookData struct {
	SchemaVersion int                `json:"schema_version"`
	EventID       string             `json:"event_id"`
	IncidentID    string             `json:"incident_id"`
	Sequence      int64              `json:"sequence"`
	Status        string             `json:"status"`
	StatusLabel   string             `json:"status_label"`
	Closed        bool               `json:"closed"`
	Priority      *string            `json:"priority"`
	Components    []webhookComponent `json:"components"`
	Locale        string             `json:"locale"`
	Title         map[string]string  `json:"title"`
	Body          map[string]string  `json:"body"`
	Original      webhookOriginal    `json:"original"`
	Header        *webhookHeader     `json:"header"`
	URL           *string            `json:"url"`
	StartedAt     *string            `json:"started_at"`
	PublishedAt   string             `json:"published_at"`
	// ScheduledFor and ScheduledUntil are a maintenance's window,
	// Cancelled marks a maintenance called off; absent for incidents.
	ScheduledFor   *string `json:"scheduled_for,omitempty"`
	ScheduledUntil *string `json:"scheduled_until,omitempty"`
	Cancelled      bool    `json:"cancelled,omitempty"`
	// Rescheduled marks the update that moved a maintenance's window;
	// PreviousScheduledFor and PreviousScheduledUntil are the window it
	// moved. Absent otherwise.
	Rescheduled            bool    `json:"rescheduled,omitempty"`
	PreviousScheduledFor   *string `json:"previous_scheduled_for,omitempty"`
	PreviousScheduledUntil *string `json:"previous_scheduled_until,omitempty"`
	// Reminder is set in a maintenance reminder (type
	// maintenance.reminder).
	Reminder  *webhookReminder `json:"reminder,omitempty"`
	Truncated bool             `json:"truncated"`
}

type webhookComponent struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type webhookOriginal struct {
	Title incident.Text `json:"title"`
	Body  incident.Text `json:"body"`
}

type webhookHeader struct {
	Reference      string            `json:"reference,omitempty"`
	Start          *string           `json:"start"`
	StartText      string            `json:"start_text,omitempty"`
	End            *string           `json:"end"`
	EndText        string            `json:"end_text,omitempty"`
	Ongoing        bool              `json:"ongoing"`
	Category       map[string]string `json:"category,omitempty"`
	Responsibility map[string]string `json:"responsibility,omitempty"`
	Priority       string            `json:"priority,omitempty"`
}

// renderWebhook renders the webhook payload of an update for a reader of
// lp.frame. It is deterministic for an update and a language pair.
func (r *Renderer) renderWebhook(p *prepared, lp langPair) (*Rendered, error) {
	ev := p.ev
	lang := lp.frame
	cat := r.cats[lang]
	d := &webhookData{
		SchemaVersion: WebhookSchemaVersion,
		EventID:       ev.ID, IncidentID: ev.IncidentID, Sequence: ev.Sequence,
		Status: string(ev.Status), StatusLabel: cat.must("status." + string(ev.Status)), Closed: ev.Status.Closed(),
		Components: []webhookComponent{},
		Locale:     lang,
		Title:      map[string]string{}, Body: map[string]string{},
		Original:    webhookOriginal{Title: ev.Title, Body: ev.Body},
		PublishedAt: p.published.UTC().Format(time.RFC3339),
	}
	if ev.Priority != "" {
		s := string(ev.Priority)
		d.Priority = &s
	}
	for _, id := range ev.Components {
		d.Components = append(d.Components, webhookComponent{ID: id, Name: r.cfg.Components.Name(id, lang, r.locales.first())})
	}
	if len(p.available) == 0 {
		d.Title[lang], d.Body[lang] = p.texts[lp.text].title, p.texts[lp.text].body
	}
	for _, l := range p.available {
		if t := p.texts[l].title; t != "" {
			d.Title[l] = t
		}
		d.Body[l] = p.texts[l].body
	}
	if u := r.link(ev); u != "" {
		d.URL = &u
	}
	if ev.StartedAt != nil {
		s := ev.StartedAt.Format(time.RFC3339)
		d.StartedAt = &s
	}
	if ev.ScheduledFor != nil && ev.ScheduledUntil != nil {
		from, until := ev.ScheduledFor.Format(time.RFC3339), ev.ScheduledUntil.Format(time.RFC3339)
		d.ScheduledFor, d.ScheduledUntil, d.Cancelled = &from, &until, ev.Cancelled
	}
	d.Header = webhookHeaderOf(p.header)
	typ, timestamp := webhookMaintenance(d, p)
	payload := webhookPayload{Type: typ, Timestamp: timestamp, Data: d}
	body, err := marshalJSON(payload)
	if err != nil {
		return nil, err
	}
	for tries := 0; len(body) >= WebhookMaxBytes && tries < 64; tries++ {
		if !shrinkWebhook(d, len(body)-WebhookMaxBytes) {
			break
		}
		if body, err = marshalJSON(payload); err != nil {
			return nil, err
		}
	}
	subject := subjectLine("[" + headline(p, cat) + "] " + p.texts[lp.text].title)
	return &Rendered{Locale: lp.text, Frame: lp.frame, Subject: subject, Body: body, ContentType: "application/json"}, nil
}

// shrinkWebhook cuts the longest body text (per-language or original) by
// at least excess bytes, on a word boundary, ending with the update's
// link. It reports whether there was anything left to cut.
func shrinkWebhook(d *webhookData, excess int) bool {
	link := ""
	if d.URL != nil {
		link = " " + *d.URL
	}
	type ref struct {
		get func() string
		set func(string)
	}
	var refs []ref
	d.Body = maps.Clone(d.Body)
	for _, k := range sortedKeys(d.Body) {
		refs = append(refs, ref{func() string { return d.Body[k] }, func(s string) { d.Body[k] = s }})
	}
	if d.Original.Body.ByLocale == nil {
		refs = append(refs, ref{func() string { return d.Original.Body.Plain }, func(s string) { d.Original.Body.Plain = s }})
	} else {
		d.Original.Body.ByLocale = maps.Clone(d.Original.Body.ByLocale)
		for _, k := range d.Original.Body.Locales() {
			refs = append(refs, ref{func() string { return d.Original.Body.ByLocale[k] }, func(s string) { d.Original.Body.ByLocale[k] = s }})
		}
	}
	best := -1
	for i, rf := range refs {
		if best < 0 || len(rf.get()) > len(refs[best].get()) {
			best = i
		}
	}
	if best < 0 || len(refs[best].get()) < 200 {
		return false
	}
	s := refs[best].get()
	// JSON escaping can make text longer than its bytes; cut a margin.
	keep := max(len(s)-excess-len(link)-64, len(s)/4)
	keep = min(keep, len(s)*3/4)
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	d.Truncated = true
	refs[best].set(cutWords(s[:keep], 0) + " …" + link)
	return true
}

func webhookHeaderOf(h header) *webhookHeader {
	if h.Reference == "" && h.Start == nil && h.End == nil && h.StartText == "" && h.EndText == "" &&
		len(h.Category) == 0 && len(h.Responsibility) == 0 && h.Priority == "" {
		return nil
	}
	wh := &webhookHeader{Reference: h.Reference, StartText: h.StartText, EndText: h.EndText, Ongoing: h.Ongoing,
		Category: h.Category, Responsibility: h.Responsibility, Priority: h.Priority}
	wh.Start = headerTime(h.Start, h.StartDateOnly)
	wh.End = headerTime(h.End, h.EndDateOnly)
	return wh
}

// headerTime writes a header date as "2025-05-03" (date only) or RFC 3339.
func headerTime(t *time.Time, dateOnly bool) *string {
	if t == nil {
		return nil
	}
	s := t.Format(time.RFC3339)
	if dateOnly {
		s = t.Format(time.DateOnly)
	}
	return &s
}

// marshalJSON encodes v without HTML escaping (<, >, & stay readable in
// Slack mrkdwn and in bodies) and without a trailing newline.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
