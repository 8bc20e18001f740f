package templates

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"html"
	"slices"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/templates/multilingual"
	"github.com/yuin/goldmark"
	"golang.org/x/sync/singleflight"
	"golang.org/x/text/language"
)

// The channels Herald renders for (the names of package channels).
const (
	// ChannelEmail renders Subject, Text, HTML and Headers.
	ChannelEmail = "email"
	// ChannelSMS renders Text within the segment budget.
	ChannelSMS = "sms"
	// ChannelSlack renders the Block Kit Body and Parent.
	ChannelSlack = "slack"
	// ChannelWebhook renders the JSON Body.
	ChannelWebhook = "webhook"
)

// ErrUnknownChannel is returned for a channel Herald has no rendering for.
var ErrUnknownChannel = errors.New("unknown channel")

// ErrUnknownNotice is returned by RenderNotice for an unknown notice kind.
var ErrUnknownNotice = errors.New("unknown notice kind")

// Renderer renders updates and notices for every channel and locale. It is
// safe for concurrent use.
type Renderer struct {
	cfg     Config
	cats    map[string]*catalog
	locales *locales
	tmpl    *templateSet
	md      goldmark.Markdown
	seed    maphash.Seed
	// splitter cuts multilingual titles and bodies per language.
	splitter *multilingual.Splitter

	prep  *lru.Cache[prepKey, *prepared]
	cache *lru.Cache[renderKey, *Rendered]
	// preparing runs one preparation per update at a time: the delivery
	// workers rendering a new update wait for it instead of each splitting
	// its text again.
	preparing singleflight.Group
}

// Recipient is who a message is for.
type Recipient struct {
	// Locale is the subscriber's BCP 47 tag ("fr-BE").
	Locale string
	// Location is the subscriber's time zone; nil means UTC.
	Location *time.Location
	// Name is the subscriber's display name; may be empty.
	Name string
	// UnsubscribeURL is the signed one-click unsubscribe link of the
	// endpoint (email); may be empty. Only http(s) links are used.
	UnsubscribeURL string
	// PreferencesURL links to the subscriber's preferences; may be empty.
	PreferencesURL string
}

// Update is one incident update to render.
type Update struct {
	// Event is the update.
	Event *incident.Event
	// AcceptedAt is when Herald accepted the update; it stands for the
	// publication time when the event has no published_at.
	AcceptedAt time.Time
	// Reminder, when set, presents the update, which announced a
	// maintenance, as a reminder of it (its wording, the time left, and
	// for webhooks the type maintenance.reminder). Nil otherwise.
	Reminder *Reminder
	// Previous, when set, is the window this update of a maintenance moved
	// (the one subscribers were told before): the update is presented as
	// a rescheduling, showing both windows. Nil otherwise.
	Previous *Window
}

// Rendered is one message, ready for a channel. Byte slices are shared
// with the renderer's cache: treat them as read-only.
type Rendered struct {
	// Locale is the language of the update's own text in the message
	// ("fr").
	Locale string
	// Frame is the language of everything Herald writes around that text
	// (greeting, labels, status, components, dates, footer): the
	// recipient's. It differs from Locale when the update has no text in
	// the recipient's language.
	Frame string
	// Requested is the recipient's tag as given ("fr-BE").
	Requested string
	// Fallback is true when the recipient's locale matched no supported
	// locale, or when the update had no text in the matched language and
	// the message was written in another one (see Config.Fallback).
	Fallback bool
	// Confidence is the x/text/language confidence of the match: "exact",
	// "high", "low" or "no".
	Confidence string
	// Subject is the email subject, or a one-line summary for other
	// channels. Never holds CR or LF.
	Subject string
	// Text is the email text part, the SMS body (within the segment
	// budget), or the Slack fallback text.
	Text string
	// HTML is the email HTML part.
	HTML string
	// Body is the webhook payload JSON, or the Slack message JSON
	// ({"text": ..., "blocks": [...]}).
	Body []byte
	// Parent is, for Slack only, the incident's living parent message:
	// its current status (marked resolved once closed).
	Parent []byte
	// ContentType is Body's media type ("application/json"); empty when
	// there is no Body.
	ContentType string
	// Headers are the email headers derived from the recipient and the
	// update: List-Unsubscribe, List-Unsubscribe-Post, List-Id,
	// Auto-Submitted, X-Auto-Response-Suppress, Content-Language and
	// Feedback-ID ("TSR-1610:incident-monitoring:herald"). They override
	// the email channel's defaults for the same headers, which follow
	// the same formats; the channel refuses the headers it writes itself
	// (From, To, Subject, Date, Message-ID…), so none are here.
	Headers map[string]string
	// Attachments are the email's files: the iCalendar event of an
	// update about a maintenance (see CalendarFilename). Nil otherwise.
	Attachments []Attachment
	// Segments and Encoding describe an SMS: the number of parts and
	// "GSM-7" or "UCS-2". Zero for other channels.
	Segments int
	Encoding string

	// textParts and htmlParts cut a cached email at its per-recipient
	// placeholders.
	textParts, htmlParts *marked
}

type prepKey struct {
	id string
	fp uint64
}

type renderKey struct {
	prep     prepKey
	frame    string
	lang     string
	channel  string
	zone     string
	shape    int
	fallback bool
	variant  variant
}

// New loads the templates and catalogs (embedded, and the overrides of
// cfg.Dir), checks them, and renders a sample update in every locale and
// channel so that a broken template or catalog fails here, with its file
// and line, rather than at send time.
func New(cfg Config) (*Renderer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	files, overrides, err := loadSources(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	cats, err := loadCatalogs(files, overrides)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	tmpl, err := parseTemplates(files)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	names := sortedKeys(cats)
	for _, f := range cfg.Fallback {
		if _, ok := cats[f]; !ok {
			return nil, fmt.Errorf("templates: fallback locale %q has no catalog (have %s)", f, strings.Join(names, ", "))
		}
	}
	r := &Renderer{cfg: cfg, cats: cats, locales: newLocales(names, cfg.Fallback), tmpl: tmpl, md: newMarkdown(), seed: maphash.MakeSeed()}
	if r.splitter, err = newSplitter(r.locales.names); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	size := max(cfg.CacheSize, 1)
	if r.cache, err = lru.New[renderKey, *Rendered](size); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	if r.prep, err = lru.New[prepKey, *prepared](max(size/8, 64)); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	if err := r.selfTest(); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	if cfg.Dir != "" {
		cfg.Logger.Info("templates loaded", "dir", cfg.Dir, "overrides", len(overrides)+countOverrides(files), "locales", names)
	}
	return r, nil
}

func countOverrides(files map[string]source) int {
	n := 0
	for _, f := range files {
		if !strings.HasPrefix(f.path, "(embedded)") {
			n++
		}
	}
	return n
}

// selfTest renders sample updates and a notice in every locale, channel
// and recipient shape, without caching.
func (r *Renderer) selfTest() error {
	start := time.Date(2025, 5, 3, 14, 11, 0, 0, time.UTC)
	// The first sample has a text in every locale, so that every
	// catalog renders the update templates whole.
	titles, bodies := map[string]string{}, map[string]string{}
	for _, lang := range r.locales.names {
		titles[lang] = "Sample"
		bodies[lang] = "Sample **body**.\n\n| a | b |\n|---|---|\n| 1 | 2 |"
	}
	samples := []*incident.Event{
		{ID: "SAMPLE-1:1", IncidentID: "SAMPLE-1", Sequence: 1, Status: incident.Investigating, Priority: incident.P1,
			Components: r.cfg.Components.IDs(), Title: incident.LocalizedText(titles), Body: incident.LocalizedText(bodies),
			URL: "https://status.example.com/incidents/SAMPLE-1", StartedAt: &start, PublishedAt: &start},
		{ID: "SAMPLE-2:2", IncidentID: "SAMPLE-2", Sequence: 2, Status: incident.Completed,
			Title: incident.PlainText("Sample"), Body: incident.PlainText("Sample")},
	}
	if err := r.selfTestMaintenance(start); err != nil {
		return err
	}
	for _, ev := range samples {
		p, err := r.prepareChecked(Update{Event: ev, AcceptedAt: start}, prepKey{id: ev.ID})
		if err != nil {
			return err
		}
		for _, loc := range r.locales.names {
			lang, _ := r.locales.choose(loc, language.Exact, p.available)
			for _, ch := range []string{ChannelEmail, ChannelSMS, ChannelSlack, ChannelWebhook} {
				for _, shape := range []int{0, hasName | hasUnsubscribe | hasPreferences} {
					if _, err := r.renderChannel(p, langPair{frame: loc, text: lang}, ch, time.UTC, shape, shape == 0); err != nil {
						return fmt.Errorf("locale %s, channel %s: %w", loc, ch, err)
					}
				}
			}
			for _, ch := range []string{ChannelEmail, ChannelSMS, ChannelSlack, ChannelWebhook} {
				n := Notice{Kind: NoticeEndpointDisabled, EndpointID: "e1", EndpointChannel: ChannelWebhook, Reason: "HTTP 410 Gone", At: start}
				if _, err := r.RenderNotice(n, ch, Recipient{Locale: loc, Name: "Sample", UnsubscribeURL: "https://example.com/u"}); err != nil {
					return fmt.Errorf("locale %s, notice on %s: %w", loc, ch, err)
				}
			}
			for _, n := range []Notice{
				{Kind: NoticeConfirm, Link: "https://example.com/confirm/x", Expires: start},
				{Kind: NoticeFollowConfirm, Link: "https://example.com/confirm/x", IncidentID: "SAMPLE-1", Expires: start},
				{Kind: NoticeManageLink, Link: "https://example.com/manage/x", Expires: start},
				{Kind: NoticeCode, Code: "123456", Expires: start},
			} {
				ch := ChannelEmail
				if n.Kind == NoticeCode {
					ch = ChannelSMS
				}
				if _, err := r.RenderNotice(n, ch, Recipient{Locale: loc, Name: "Sample"}); err != nil {
					return fmt.Errorf("locale %s, notice %s: %w", loc, n.Kind, err)
				}
			}
		}
	}
	return nil
}

// Locales returns the supported locales, the fallback chain first.
func (r *Renderer) Locales() []string { return slices.Clone(r.locales.names) }

// Render renders an update for one channel ("email", "sms", "slack",
// "webhook") and recipient. Renderings are cached per update, language,
// channel, time zone and recipient shape; the recipient's name and links
// are filled in after the cache.
func (r *Renderer) Render(u Update, channel string, rc Recipient) (*Rendered, error) {
	if u.Event == nil {
		return nil, errors.New("templates: update without event")
	}
	switch channel {
	case ChannelEmail, ChannelSMS, ChannelSlack, ChannelWebhook:
	default:
		return nil, fmt.Errorf("templates: %w %q", ErrUnknownChannel, channel)
	}
	vr, err := variantOf(u)
	if err != nil {
		return nil, fmt.Errorf("templates: update %s: %w", u.Event.ID, err)
	}
	p, err := r.prepared(u)
	if err != nil {
		return nil, err
	}
	pk := p.key
	matched, conf := r.locales.match(rc.Locale)
	lang, fallback := r.locales.choose(matched, conf, p.available)
	loc := rc.Location
	if loc == nil {
		loc = time.UTC
	}
	// Herald's own words are in the recipient's language even when the
	// update's text falls back to another one.
	lp := langPair{frame: matched, text: lang}
	key := renderKey{prep: pk, frame: lp.frame, lang: lang, channel: channel, variant: vr}
	switch channel {
	case ChannelEmail:
		key.zone, key.shape, key.fallback = loc.String(), recipientShape(rc), fallback
	case ChannelSlack:
		key.zone, key.shape, key.fallback = loc.String(), recipientShape(rc)&(hasUnsubscribe|hasPreferences), fallback
	case ChannelSMS:
		key.zone = loc.String()
	case ChannelWebhook:
		// Payloads carry the lead time, not the time left: the same
		// payload for every retry.
		key.variant.left = key.variant.lead
	}
	p = p.with(key.variant)
	cached, ok := r.cache.Get(key)
	if !ok {
		if cached, err = r.renderChannel(p, lp, channel, loc, key.shape, key.fallback); err != nil {
			return nil, fmt.Errorf("templates: update %s: %w", u.Event.ID, err)
		}
		if channel == ChannelEmail {
			cached.textParts, cached.htmlParts = splitMarks(cached.Text), splitMarks(cached.HTML)
		}
		r.cache.Add(key, cached)
	}
	out := *cached
	out.textParts, out.htmlParts = nil, nil
	out.Requested, out.Confidence, out.Fallback = rc.Locale, confidenceName(conf), fallback
	if channel == ChannelEmail {
		out.Text = cached.textParts.fill(cleanLine(rc.Name), recipientURL(rc.UnsubscribeURL), recipientURL(rc.PreferencesURL))
		out.HTML = cached.htmlParts.fill(html.EscapeString(cleanLine(rc.Name)), html.EscapeString(recipientURL(rc.UnsubscribeURL)),
			html.EscapeString(recipientURL(rc.PreferencesURL)))
		out.Headers = r.emailHeaders(rc, lp.contentLanguage(), mailType(p), p.ev.IncidentID)
	}
	if channel == ChannelSlack && key.shape != 0 {
		out.Body = []byte(splitMarks(string(cached.Body)).fill("",
			jsonText(slackURL(recipientURL(rc.UnsubscribeURL))), jsonText(slackURL(recipientURL(rc.PreferencesURL)))))
	}
	return &out, nil
}

// prepared returns the update prepared for rendering, from the cache or
// prepared once however many workers ask at the same time.
func (r *Renderer) prepared(u Update) (*prepared, error) {
	pk := prepKey{id: u.Event.ID, fp: r.fingerprint(u)}
	if p, ok := r.prep.Get(pk); ok {
		return p, nil
	}
	v, err, _ := r.preparing.Do(u.Event.ID+"\x00"+strconv.FormatUint(pk.fp, 16), func() (any, error) {
		if p, ok := r.prep.Get(pk); ok {
			return p, nil
		}
		p, err := r.prepareChecked(u, pk)
		if err == nil {
			r.prep.Add(pk, p)
		}
		return p, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*prepared), nil
}

// prepareChecked validates the event and prepares it.
func (r *Renderer) prepareChecked(u Update, pk prepKey) (*prepared, error) {
	if err := u.Event.Validate(); err != nil {
		return nil, fmt.Errorf("templates: invalid update: %w", err)
	}
	if u.AcceptedAt.IsZero() && u.Event.PublishedAt == nil {
		u.AcceptedAt = r.cfg.Now()
	}
	p := r.prepare(u)
	p.key = pk
	return p, nil
}

// langPair is the languages of one rendering: frame, of everything Herald
// writes (the recipient's), and text, of the update's own text (another
// one when the update has none in the recipient's language).
type langPair struct{ frame, text string }

// contentLanguage is the Content-Language of a message: its frame's
// language, then its text's when that differs ("it, fr").
func (lp langPair) contentLanguage() string {
	if lp.text == lp.frame {
		return lp.frame
	}
	return lp.frame + ", " + lp.text
}

// renderChannel renders an update without the recipient's personal values.
func (r *Renderer) renderChannel(p *prepared, lp langPair, channel string, loc *time.Location, shape int, fallback bool) (*Rendered, error) {
	switch channel {
	case ChannelEmail:
		return r.renderEmail(p, lp, loc, shape, fallback)
	case ChannelSMS:
		return r.renderSMS(p, lp, loc)
	case ChannelSlack:
		return r.renderSlack(p, lp, loc, shape, fallback)
	default:
		return r.renderWebhook(p, lp)
	}
}

// personalize replaces the per-recipient placeholders of a cached email.
func (r *Renderer) personalize(out *Rendered, rc Recipient) {
	name, unsub, prefs := cleanLine(rc.Name), recipientURL(rc.UnsubscribeURL), recipientURL(rc.PreferencesURL)
	out.Text = splitMarks(out.Text).fill(name, unsub, prefs)
	out.HTML = splitMarks(out.HTML).fill(html.EscapeString(name), html.EscapeString(unsub), html.EscapeString(prefs))
}

// jsonText returns s escaped for the inside of a JSON string.
func jsonText(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b[1 : len(b)-1])
}

// recipientURL returns u when it is a safe http(s) link, else "".
func recipientURL(u string) string {
	if safeURL(u) {
		return u
	}
	return ""
}

// marked is a cached text cut at its per-recipient placeholders:
// parts[0] value(marks[0]) parts[1] ... parts[len(parts)-1].
type marked struct {
	parts []string
	marks []int // 0 name, 1 unsubscribe URL, 2 preferences URL
}

var markNames = [3]string{nameMark, unsubMark, prefsMark}

func splitMarks(s string) *marked {
	m := &marked{}
	for {
		i := strings.Index(s, markPrefix)
		if i < 0 {
			break
		}
		k := -1
		for j, name := range markNames {
			if strings.HasPrefix(s[i:], name) {
				k = j
				break
			}
		}
		if k < 0 {
			// Not one of ours (update texts are cleaned of the prefix,
			// so this does not happen); keep it as text.
			m.parts = append(m.parts, s[:i+len(markPrefix)])
			m.marks = append(m.marks, -1)
			s = s[i+len(markPrefix):]
			continue
		}
		m.parts = append(m.parts, s[:i])
		m.marks = append(m.marks, k)
		s = s[i+len(markNames[k]):]
	}
	m.parts = append(m.parts, s)
	return m
}

// fill joins the parts with the recipient's values.
func (m *marked) fill(vals ...string) string {
	if len(m.marks) == 0 {
		return m.parts[0]
	}
	n := 0
	for _, p := range m.parts {
		n += len(p)
	}
	for _, k := range m.marks {
		if k >= 0 {
			n += len(vals[k])
		}
	}
	var b strings.Builder
	b.Grow(n)
	for i, k := range m.marks {
		b.WriteString(m.parts[i])
		if k >= 0 {
			b.WriteString(vals[k])
		}
	}
	b.WriteString(m.parts[len(m.parts)-1])
	return b.String()
}

// feedbackSender is the sender id (Gmail's SenderId) ending every
// Feedback-ID Herald writes.
const feedbackSender = "herald"

// emailHeaders returns the headers derived from the recipient and the
// update or notice. Package templates owns these in Herald: the email
// channel writes From, To, Subject, Date, Message-ID and the MIME headers
// itself and refuses them here, and gives defaults, which these override,
// for Auto-Submitted, List-Id, Feedback-ID and Content-Language — in the
// same formats, so that a message reads the same whichever layer wrote
// them.
func (r *Renderer) emailHeaders(rc Recipient, lang, mailType, incidentID string) map[string]string {
	h := map[string]string{
		"Auto-Submitted":           "auto-generated",
		"X-Auto-Response-Suppress": "OOF, AutoReply",
		"Content-Language":         lang,
		"Feedback-ID":              feedbackID(incidentID, mailType),
	}
	if id := listID(r.cfg.ListID); id != "" {
		h["List-Id"] = id
	}
	var unsub []string
	if safeURL(rc.UnsubscribeURL) {
		unsub = append(unsub, "<"+rc.UnsubscribeURL+">")
		if strings.HasPrefix(strings.ToLower(rc.UnsubscribeURL), "https:") {
			h["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
		}
	}
	if r.cfg.UnsubscribeMailto != "" {
		unsub = append(unsub, "<mailto:"+r.cfg.UnsubscribeMailto+"?subject=unsubscribe>")
	}
	if len(unsub) > 0 {
		h["List-Unsubscribe"] = strings.Join(unsub, ", ")
	}
	return h
}

// feedbackID returns the Feedback-ID header value
// "[<incident id>:]<mail type>:herald": Gmail's feedback loop reads up to
// four colon-separated identifiers from the right, the right-most the
// sender id, the same for the whole mail stream, and reports complaint
// rates for each of the others independently. The incident (one
// announcement to many readers, never a single recipient) and the mail
// type ("incident-monitoring", "notice-endpoint.disabled") are the
// groupings worth a report. Package email writes the same format when a
// message has no Feedback-ID of its own. Colons, spaces and control
// characters are dropped from the fields; empty ones are left out.
func feedbackID(incidentID, mailType string) string {
	fields := make([]string, 0, 3)
	for _, f := range []string{incidentID, mailType} {
		f = strings.Map(func(r rune) rune {
			if r == ':' || r <= ' ' || r == 0x7f {
				return -1
			}
			return r
		}, f)
		if f != "" {
			fields = append(fields, f)
		}
	}
	return strings.Join(append(fields, feedbackSender), ":")
}

// listID returns the List-Id header value for s: s itself when it holds
// the <id>, s in angle brackets when it is a bare id (RFC 2919 wants
// them), as package email writes it.
func listID(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.Contains(s, "<") {
		return s
	}
	return "<" + s + ">"
}
