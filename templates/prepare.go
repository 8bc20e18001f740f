package templates

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/incident"
)

// prepared is what every rendering of one update shares: its title and
// body per language, the parsed header, and the Markdown of each body.
// It is computed once per update and cached.
type prepared struct {
	key      prepKey
	ev       *incident.Event
	accepted time.Time
	// texts holds the title and body per supported language. When the
	// update's language could not be identified, every language holds
	// the whole text and available is empty.
	texts map[string]*langText
	// available lists the languages the update has a body in, in the
	// supported order.
	available []string
	header    header
	// published is the update's publication time: published_at, or when
	// Herald accepted it.
	published time.Time
	// variant is how this rendering presents the update (a maintenance
	// reminder, a rescheduling); the zero value presents it as itself.
	variant variant
}

// langText is an update's text in one language.
type langText struct {
	// title is empty when the update has no title in this language.
	title string
	// body is Markdown, line structure restored (see reflowMarkdown).
	body string
	// doc renders body; short renders body cut to the configured maximum
	// (nil when body is short enough).
	doc, short *mdDoc
}

// fingerprint identifies an update's content for the caches.
func (r *Renderer) fingerprint(u Update) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	ev := u.Event
	str := func(s string) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.WriteString(s)
	}
	num := func(v int64) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	text := func(t incident.Text) {
		if t.ByLocale == nil {
			str(t.Plain)
			return
		}
		num(int64(len(t.ByLocale)))
		for _, k := range t.Locales() {
			str(k)
			str(t.ByLocale[k])
		}
	}
	tm := func(t *time.Time) {
		if t == nil {
			num(-1)
			return
		}
		num(t.UnixNano())
		_, off := t.Zone()
		num(int64(off))
	}
	str(ev.ID)
	str(ev.IncidentID)
	num(ev.Sequence)
	str(string(ev.Status))
	str(string(ev.Priority))
	num(int64(len(ev.Components)))
	for _, c := range ev.Components {
		str(c)
	}
	text(ev.Title)
	text(ev.Body)
	str(ev.URL)
	tm(ev.StartedAt)
	tm(ev.PublishedAt)
	tm(ev.ScheduledFor)
	tm(ev.ScheduledUntil)
	if ev.Cancelled {
		num(1)
	}
	if ev.PublishedAt == nil {
		a := u.AcceptedAt
		tm(&a)
	}
	return h.Sum64()
}

// prepare splits the update's texts per language and parses its Markdown.
func (r *Renderer) prepare(u Update) *prepared {
	ev := u.Event
	p := &prepared{ev: ev, accepted: u.AcceptedAt, texts: map[string]*langText{}}
	p.published = u.AcceptedAt
	if ev.PublishedAt != nil {
		p.published = *ev.PublishedAt
	}
	titles, _ := r.splitText(ev.Title, false)
	bodies, hdr := r.splitText(ev.Body, true)
	p.header = hdr
	for _, lang := range r.locales.names {
		if _, ok := bodies[lang]; ok {
			p.available = append(p.available, lang)
		}
	}
	if len(p.available) == 0 {
		// Unknown language: the whole text, under every language.
		whole := cleanText(ev.Body.String())
		title := cleanLine(ev.Title.String())
		for _, lang := range r.locales.names {
			p.texts[lang] = r.newLangText(lang, title, whole)
		}
		return p
	}
	if len(titles) == 0 {
		// A title whose language cannot be told is sent whole.
		whole := cleanLine(ev.Title.String())
		for _, lang := range p.available {
			titles[lang] = whole
		}
	}
	for _, lang := range p.available {
		p.texts[lang] = r.newLangText(lang, titles[lang], bodies[lang])
	}
	return p
}

func (r *Renderer) newLangText(lang, title, body string) *langText {
	body = reflowMarkdown(cleanText(body))
	colon := r.cats[lang].must("locale.colon")
	lt := &langText{title: cleanLine(title), body: body, doc: newDoc(r.md, body, colon)}
	if cut, ok := truncateMarkdown(body, r.cfg.MaxBodyRunes); ok {
		lt.short = newDoc(r.md, cut, colon)
	}
	return lt
}

// splitText returns a text per supported language: the event's own
// per-locale texts, or the parts of a multilingual string.
func (r *Renderer) splitText(t incident.Text, body bool) (map[string]string, header) {
	out := map[string]string{}
	if t.ByLocale != nil {
		// Exact locale keys ("fr") win over regional ones ("fr-BE").
		keys := t.Locales()
		slices.SortStableFunc(keys, func(a, b string) int { return len(b) - len(a) })
		for _, k := range keys {
			if lang := r.locales.base(k); lang != "" && strings.TrimSpace(t.ByLocale[k]) != "" {
				out[lang] = t.ByLocale[k]
			}
		}
		return out, header{}
	}
	return r.split(t.Plain, body)
}

// cleanText removes what must never reach a message: control characters
// other than line breaks and tabs, the per-recipient placeholders, and
// Windows line ends.
func cleanText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = stripPlaceholders(s)
	if !strings.ContainsFunc(s, isUnwantedControl) {
		return strings.TrimSpace(s)
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r == '\r' || r == '\u2028' || r == '\u2029' || r == '\u0085' {
			return '\n'
		}
		if isUnwantedControl(r) {
			return -1
		}
		return r
	}, s))
}

func isUnwantedControl(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

// cleanLine returns s on one line: line breaks and control characters
// become spaces, runs of spaces one space.
func cleanLine(s string) string {
	s = stripPlaceholders(s)
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || isUnwantedControl(r) || r == '\n' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// truncateMarkdown cuts Markdown longer than max characters at the last
// block boundary (blank line), else line break, else word boundary before
// the limit. It reports whether it cut.
func truncateMarkdown(s string, max int) (string, bool) {
	if utf8.RuneCountInString(s) <= max {
		return s, false
	}
	limit := byteOffset(s, max)
	head := s[:limit]
	for _, sep := range []string{"\n\n", "\n"} {
		if i := strings.LastIndex(head, sep); i > limit/2 {
			return strings.TrimSpace(head[:i]), true
		}
	}
	return cutWords(head, 0) + " …", true
}

// byteOffset returns the byte offset of the n-th rune of s (len(s) when s
// is shorter).
func byteOffset(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

// cutWords returns s cut at its last word boundary after min bytes (or
// whole when it has none), without trailing spaces or separators.
func cutWords(s string, min int) string {
	i := strings.LastIndexFunc(s, unicode.IsSpace)
	if i > min {
		s = s[:i]
	}
	return strings.TrimRight(s, " \t\n,;:-–—(")
}
