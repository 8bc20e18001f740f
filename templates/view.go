package templates

import (
	"html/template"
	"net/url"
	"strings"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/heraldhq/herald/incident"
)

// view is the data of the update templates (email.*.tmpl, sms.txt.tmpl).
// Its fields are documented in the package documentation, for template
// authors.
type view struct {
	cat *catalog

	T    map[string]map[string]string
	Lang string

	Subject       string
	Title         string
	Status        string
	StatusLabel   string
	Color         string
	Emoji         string
	Closed        bool
	Maintenance   bool
	Priority      string
	PriorityLabel string
	Components    []string
	ComponentList string
	Summary       string

	Started, Ended, Updated string
	Ongoing                 bool

	Reference, Category, Responsibility string

	Body      string
	BodyHTML  template.HTML
	Truncated bool
	URL       string
	// FollowURL is the public page where anyone follows this incident
	// alone (empty without a public URL, or once the incident is over).
	FollowURL string
	Fallback  bool
	// FallbackNote tells the recipient, in .Lang, that the update was
	// not published in their language, naming the language of its text.
	FallbackNote string
	// TextLang is the language of the update's own text (.Title, .Body)
	// when it differs from .Lang; empty otherwise.
	TextLang string

	// Window is a maintenance's window in the reader's words and zone
	// (empty for an incident); PreviousWindow the window a rescheduling
	// moved. Reminder, Rescheduled and Cancelled say how the update is
	// presented; Left is, in a reminder, the time until the window in
	// words ("24 hours").
	Window, PreviousWindow           string
	Reminder, Rescheduled, Cancelled bool
	Left                             string
	// baseSummary is the summary of the update's status, before a
	// reminder's wording replaced it (the calendar event keeps it).
	baseSummary string

	Recipient recipientView
}

// recipientView holds the per-recipient values. Cached renderings carry
// placeholders that are replaced for each recipient.
type recipientView struct {
	Name           string
	UnsubscribeURL string
	PreferencesURL string
}

// Tr returns the catalog string of key ("notice.disabled_body") with its
// {name} placeholders filled from name, value pairs.
func (v *view) Tr(key string, args ...string) (string, error) { return v.cat.format(key, args...) }

// Placeholders of per-recipient values in cached renderings. They are
// letters only, so that every escaper leaves them alone, and they are
// removed from update texts.
const (
	markPrefix = "xHRLDx"
	nameMark   = markPrefix + "NAMEx"
	unsubMark  = markPrefix + "UNSUBx"
	prefsMark  = markPrefix + "PREFSx"
)

func stripPlaceholders(s string) string {
	if !strings.Contains(s, markPrefix) {
		return s
	}
	return strings.ReplaceAll(s, markPrefix, "")
}

// Recipient shapes: which per-recipient values a rendering shows.
const (
	hasName = 1 << iota
	hasUnsubscribe
	hasPreferences
)

func recipientShape(rc Recipient) int {
	shape := 0
	if cleanLine(rc.Name) != "" {
		shape |= hasName
	}
	if safeURL(rc.UnsubscribeURL) {
		shape |= hasUnsubscribe
	}
	if safeURL(rc.PreferencesURL) {
		shape |= hasPreferences
	}
	return shape
}

func placeholderRecipient(shape int) recipientView {
	var rv recipientView
	if shape&hasName != 0 {
		rv.Name = nameMark
	}
	if shape&hasUnsubscribe != 0 {
		rv.UnsubscribeURL = unsubMark
	}
	if shape&hasPreferences != 0 {
		rv.PreferencesURL = prefsMark
	}
	return rv
}

// Status presentation: accent color of emails and the Slack emoji.
var statusColors = map[incident.Status]string{
	incident.Investigating: "#cf222e",
	incident.Identified:    "#bc4c00",
	incident.Monitoring:    "#9a6700",
	incident.Resolved:      "#1a7f37",
	incident.Postmortem:    "#57606a",
	incident.Scheduled:     "#0969da",
	incident.InProgress:    "#8250df",
	incident.Completed:     "#1a7f37",
}

var statusEmoji = map[incident.Status]string{
	incident.Investigating: ":red_circle:",
	incident.Identified:    ":large_orange_circle:",
	incident.Monitoring:    ":large_yellow_circle:",
	incident.Resolved:      ":white_check_mark:",
	incident.Postmortem:    ":memo:",
	incident.Scheduled:     ":calendar:",
	incident.InProgress:    ":hammer_and_wrench:",
	incident.Completed:     ":white_check_mark:",
}

func isMaintenance(s incident.Status) bool {
	return s == incident.Scheduled || s == incident.InProgress || s == incident.Completed
}

// newView builds the template data of an update for a reader of lp.frame:
// everything Herald writes in lp.frame, dates in loc, the update's own
// text in lp.text. short selects the body cut to the configured maximum.
func (r *Renderer) newView(p *prepared, lp langPair, loc *time.Location, fallback, short bool) *view {
	lang := lp.frame
	cat := r.cats[lang]
	ev := p.ev
	lt := p.texts[lp.text]
	v := &view{
		cat: cat, T: cat.tables, Lang: lang,
		Status: string(ev.Status), StatusLabel: cat.must("status." + string(ev.Status)),
		Color: statusColors[ev.Status], Emoji: statusEmoji[ev.Status],
		Closed: ev.Status.Closed(), Maintenance: isMaintenance(ev.Status),
		Fallback: fallback, URL: r.link(ev),
	}
	if r.cfg.PublicURL != "" && !v.Closed {
		v.FollowURL = strings.TrimRight(r.cfg.PublicURL, "/") + "/follow/" + url.PathEscape(ev.IncidentID)
	}
	if v.Color == "" {
		v.Color = "#57606a"
	}
	if lp.text != lp.frame {
		v.TextLang = lp.text
	}
	if fallback {
		v.FallbackNote = cat.must("email.fallback")
		if lp.text != lp.frame {
			v.FallbackNote += " " + cat.must("email.original_language", "language", languageName(lp.text, lang))
		}
	}
	prio := ev.Priority
	if prio == "" && incident.Priority(p.header.Priority).Valid() {
		prio = incident.Priority(p.header.Priority)
	}
	if prio.Valid() {
		v.Priority, v.PriorityLabel = string(prio), cat.must("priority."+string(prio))
	}
	for _, id := range ev.Components {
		v.Components = append(v.Components, r.cfg.Components.Name(id, lang, r.locales.first()))
	}
	v.ComponentList = joinList(v.Components, cat)
	if v.ComponentList == "" {
		v.ComponentList = cat.must("field.all_components")
	}
	v.Summary = cat.must("summary."+string(ev.Status), "components", v.ComponentList)
	v.baseSummary = v.Summary
	v.Title = lt.title
	if v.Title == "" {
		key := "title.incident"
		if v.Maintenance {
			key = "title.maintenance"
		}
		v.Title = capitalize(cat.must(key, "components", v.ComponentList))
	}
	h := p.header
	switch {
	case ev.StartedAt != nil:
		v.Started = formatTime(*ev.StartedAt, loc, cat, false)
	case h.Start != nil:
		v.Started = formatTime(*h.Start, loc, cat, h.StartDateOnly)
	}
	if h.End != nil {
		v.Ended = formatTime(*h.End, loc, cat, h.EndDateOnly)
	} else if h.Ongoing && !ev.Status.Closed() {
		v.Ongoing = true
	}
	if !p.published.IsZero() {
		v.Updated = formatTime(p.published, loc, cat, false)
	}
	v.Reference = h.Reference
	if v.Reference == "" {
		v.Reference = ev.IncidentID
	}
	v.Category = pick(h.Category, lang, r.locales.fallback)
	v.Responsibility = pick(h.Responsibility, lang, r.locales.fallback)
	doc := lt.doc
	if short && lt.short != nil {
		doc, v.Truncated = lt.short, true
	}
	v.Body = doc.Text()
	v.BodyHTML = template.HTML(doc.HTML()) //nolint:gosec // goldmark output: raw HTML dropped, links filtered
	r.maintenanceView(v, p, loc)
	return v
}

// pick returns the value for lang in a per-language map, else the value
// shared by all ("" key), else the value in the first language of the
// fallback chain the map has, else "".
func pick(m map[string]string, lang string, fallback []string) string {
	if v, ok := m[lang]; ok {
		return v
	}
	if v, ok := m[""]; ok {
		return v
	}
	for _, f := range fallback {
		if v, ok := m[f]; ok {
			return v
		}
	}
	return ""
}

// link returns the update's URL, or the status page's, when it is a safe
// http(s) URL.
func (r *Renderer) link(ev *incident.Event) string {
	if safeURL(ev.URL) {
		return ev.URL
	}
	return r.cfg.StatusPageURL
}

// joinList joins names as "A, B and C" in the catalog's language.
func joinList(names []string, cat *catalog) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " " + cat.must("locale.and") + " " + names[len(names)-1]
}

func capitalize(s string) string {
	for i, r := range s {
		return strings.ToUpper(string(r)) + s[i+len(string(r)):]
	}
	return s
}

// formatTime writes t in the catalog's date layout, in loc, followed by the
// zone ("03/05/2025 16h11 (CEST)"). A date without time of day is written
// as is, without conversion.
func formatTime(t time.Time, loc *time.Location, cat *catalog, dateOnly bool) string {
	if dateOnly {
		return t.Format(cat.must("locale.date"))
	}
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	return t.Format(cat.must("locale.datetime")) + " (" + zoneName(t) + ")"
}

// zoneName returns the zone abbreviation ("CEST"), or "UTC+03" for zones
// that only have a numeric one.
func zoneName(t time.Time) string {
	name, off := t.Zone()
	if name != "" && name[0] != '+' && name[0] != '-' {
		return name
	}
	if off == 0 {
		return "UTC"
	}
	return "UTC" + t.Format("-07:00")
}

// languageName returns the name of language lang in language in ("francese"
// for fr in it), from CLDR; lang itself when CLDR has no name for it.
func languageName(lang, in string) string {
	t, err := language.Parse(lang)
	if err != nil {
		return lang
	}
	tin, err := language.Parse(in)
	if err != nil {
		return lang
	}
	if name := display.Languages(tin).Name(t); name != "" {
		return name
	}
	return lang
}
