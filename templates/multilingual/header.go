package multilingual

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Header is the shared header the status page writes at the top of a
// multilingual body:
//
//	TSR-1723 - Début / Start / Inizio : 03/05/2025 - Fin / End / Fine : En cours / Ongoing / In corso
//	- Catégorie / Category / Categoria : Production - Oney - Responsabilité / Responsibility /
//	Responsabilità : Externe / External / Esterna - Priorité / Priority / Priorità : P1
type Header struct {
	// Reference is the incident reference that opens the header
	// ("TSR-1723"), "" when the header has none.
	Reference string
	// Start and End are set when the header's dates parse. Times written
	// without a zone, or as CET or CEST, are wall times of
	// Config.Location. StartDateOnly and EndDateOnly tell that the date
	// has no time of day (Start is then midnight UTC of that date and
	// should be shown without conversion).
	Start, End                 *time.Time
	StartDateOnly, EndDateOnly bool
	// StartText and EndText are the values as written ("03/05/2025",
	// "En cours / Ongoing / In corso").
	StartText, EndText string
	// Ongoing is true when the end says the incident is not over.
	Ongoing bool
	// Category and Responsibility hold the value per language when the
	// header gives it per language ("Externe / External / Esterna",
	// matched to the languages of the field's label in order), else the
	// value under the key "".
	Category, Responsibility map[string]string
	// Priority is the priority the header gives ("P1"), "" when none.
	Priority string
	// Raw is the header as written.
	Raw string
}

// Header fields.
const (
	fieldStart = iota
	fieldEnd
	fieldCategory
	fieldResponsibility
	fieldPriority
)

// labelWords maps each word of the header's labels, lower case, to its
// field and language.
var labelWords = map[string]struct {
	field int
	lang  string
}{
	"début": {fieldStart, "fr"}, "debut": {fieldStart, "fr"}, "start": {fieldStart, "en"}, "inizio": {fieldStart, "it"},
	"fin": {fieldEnd, "fr"}, "end": {fieldEnd, "en"}, "fine": {fieldEnd, "it"},
	"catégorie": {fieldCategory, "fr"}, "categorie": {fieldCategory, "fr"}, "category": {fieldCategory, "en"}, "categoria": {fieldCategory, "it"},
	"responsabilité": {fieldResponsibility, "fr"}, "responsabilite": {fieldResponsibility, "fr"},
	"responsibility": {fieldResponsibility, "en"}, "responsabilità": {fieldResponsibility, "it"}, "responsabilita": {fieldResponsibility, "it"},
	"priorité": {fieldPriority, "fr"}, "priorite": {fieldPriority, "fr"}, "priority": {fieldPriority, "en"},
	"priorità": {fieldPriority, "it"}, "priorita": {fieldPriority, "it"},
}

var (
	labelWord  = `(?:` + labelAlternation() + `)`
	labelGroup = labelWord + `(?:[ \t]*/[ \t]*` + labelWord + `)*[ \t]*:`
	// labelAt matches a label group at the start of a string.
	labelAt = regexp.MustCompile(`^(?i)` + labelGroup)
	// nextLabel finds the next field: " - Fin / End :".
	nextLabel = regexp.MustCompile(`(?i)[ \t]+-[ \t]*(` + labelGroup + `)`)
	// reference opens a header: "TSR-1723", "SMP-2537".
	reference = regexp.MustCompile(`^([A-Z][A-Z0-9]{1,9}-[0-9]{1,9})\b`)
	// valueEnd is where the last field's value ends when the body
	// follows on the same line: a language marker or a separator.
	valueEnd    = regexp.MustCompile(`[ \t]+(?:(?:FR|EN|IT)[ \t]*:?[ \t]|={3,}|[-—–_]{5,}|(?i:in[ \t]+ital))|\n`)
	priorityVal = regexp.MustCompile(`^(P[0-9])\b`)
	firstGroup  = regexp.MustCompile(`^[^\s/]+(?:[ \t]*/[ \t]*[^\s/]+)*`)
	headerDate  = regexp.MustCompile(`(?i)^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ \t]+(?:à[ \t]+)?(\d{1,2})[ \t]*(?:[h:.][ \t]*(\d{2})?)[ \t]*(am|pm)?)?[ \t]*(cest|cet|utc|gmt|z)?([+-]\d{1,2})?\.?$`)
	ongoingRe   = regexp.MustCompile(`(?i)\b(en cours|ongoing|in corso)\b`)
)

func labelAlternation() string {
	words := make([]string, 0, len(labelWords))
	for w := range labelWords {
		words = append(words, regexp.QuoteMeta(w))
	}
	// Longest first: "fine" before "fin".
	slices.SortFunc(words, longestFirst)
	return strings.Join(words, "|")
}

// maxValue bounds a header value, in bytes: a longer one means the text
// is not a header. maxLabel bounds a label group with its separator.
const (
	maxValue = 160
	maxLabel = 120
)

// parseHeader parses the header at the start of text. It returns the
// header and the offset where the rest of the body starts, or nil when
// text does not open with a header (at least two labelled fields).
func (s *Splitter) parseHeader(text string) (*Header, int) {
	pos := len(text) - len(strings.TrimLeft(text, " \t\r\n"))
	start := pos
	h := &Header{}
	if m := reference.FindStringSubmatch(text[pos:]); m != nil {
		h.Reference = m[1]
		pos += len(m[0])
	}
	rest := strings.TrimLeft(text[pos:], " \t")
	rest = strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(rest, "-"), "–"), " \t")
	pos = len(text) - len(rest)
	seen := map[int]bool{}
	end := pos
	for {
		lm := labelAt.FindString(text[pos:])
		if lm == "" {
			break
		}
		field, langs, ok := labelField(lm)
		if !ok || seen[field] {
			break
		}
		seen[field] = true
		vstart := pos + len(lm)
		var value string
		window := text[vstart:min(len(text), vstart+maxValue+maxLabel)]
		if nm := nextLabel.FindStringIndex(window); nm != nil && nm[0] <= maxValue && !strings.ContainsRune(window[:nm[0]], '\n') {
			value = text[vstart : vstart+nm[0]]
			pos = vstart + nm[0]
			pos += len(text[pos:]) - len(strings.TrimLeft(text[pos:], " \t-"))
			end = vstart + nm[0]
		} else {
			value, end = lastValue(text, vstart, field)
			s.setField(h, field, langs, value)
			break
		}
		s.setField(h, field, langs, value)
	}
	if len(seen) < 2 {
		return nil, 0
	}
	h.Raw = strings.TrimSpace(text[start:end])
	return h, end
}

// lastValue returns the value of the header's last field, which the body
// follows: up to a marker, a separator or a line break; else a priority
// ("P2") or the first word with its translations ("Externe / External").
func lastValue(text string, vstart, field int) (string, int) {
	rest := text[vstart:]
	lead := len(rest) - len(strings.TrimLeft(rest, " \t"))
	if m := valueEnd.FindStringIndex(rest); m != nil && m[0] <= maxValue && m[0] > lead {
		return rest[:m[0]], vstart + m[0]
	}
	trimmed := rest[lead:]
	if field == fieldPriority {
		if m := priorityVal.FindString(trimmed); m != "" {
			return m, vstart + lead + len(m)
		}
	}
	m := firstGroup.FindString(trimmed)
	return m, vstart + lead + len(m)
}

// labelField returns the field of a label group ("Début / Start /
// Inizio :") and the languages of its words in order.
func labelField(label string) (int, []string, bool) {
	label = strings.TrimSuffix(strings.TrimSpace(label), ":")
	field := -1
	var langs []string
	for _, w := range strings.Split(label, "/") {
		lw, ok := labelWords[strings.ToLower(strings.TrimSpace(w))]
		if !ok || (field >= 0 && lw.field != field) {
			return 0, nil, false
		}
		field = lw.field
		langs = append(langs, lw.lang)
	}
	return field, langs, field >= 0
}

func (s *Splitter) setField(h *Header, field int, langs []string, value string) {
	value = strings.TrimSpace(value)
	value = strings.TrimSpace(strings.TrimRight(value, ".-–— \t"))
	switch field {
	case fieldStart:
		h.StartText = value
		h.Start, h.StartDateOnly = s.parseDate(value)
	case fieldEnd:
		h.EndText = value
		h.End, h.EndDateOnly = s.parseDate(value)
		h.Ongoing = h.End == nil && ongoingRe.MatchString(value)
	case fieldCategory:
		h.Category = s.perLanguage(value, langs)
	case fieldResponsibility:
		h.Responsibility = s.perLanguage(value, langs)
	case fieldPriority:
		h.Priority = value
		if m := priorityVal.FindString(value); m != "" {
			h.Priority = m
		}
	}
}

// perLanguage splits "Externe / External / Esterna" over the label's
// languages in order. A single value, or a split whose languages are not
// configured, is filed under "".
func (s *Splitter) perLanguage(value string, langs []string) map[string]string {
	if value == "" {
		return nil
	}
	alts := titleSep.Split(value, -1) // the slash between translations
	if len(alts) < 2 || len(alts) > len(langs) {
		return map[string]string{"": value}
	}
	m := map[string]string{}
	for i, a := range alts {
		if !s.supported(langs[i]) {
			return map[string]string{"": value}
		}
		m[langs[i]] = strings.TrimSpace(a)
	}
	return m
}

// parseDate parses "03/05/2025", "27/03/2025 16h11 CET" or "12/09/2024
// 12.07AM CEST". The bool tells a date without time of day.
func (s *Splitter) parseDate(v string) (*time.Time, bool) {
	m := headerDate.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return nil, false
	}
	day, _ := strconv.Atoi(m[1])
	month, _ := strconv.Atoi(m[2])
	year, _ := strconv.Atoi(m[3])
	if m[4] == "" {
		t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		if t.Day() != day || int(t.Month()) != month || year < 1 {
			return nil, false
		}
		return &t, true
	}
	hour, _ := strconv.Atoi(m[4])
	minute, _ := strconv.Atoi(m[5])
	switch strings.ToLower(m[6]) {
	case "am":
		if hour == 12 {
			hour = 0
		}
	case "pm":
		if hour < 12 {
			hour += 12
		}
	}
	if hour > 23 || minute > 59 {
		return nil, false
	}
	loc := s.cfg.Location
	switch strings.ToLower(m[7]) {
	case "utc", "gmt", "z":
		loc = time.UTC
		if m[8] != "" {
			off, _ := strconv.Atoi(m[8])
			if off < -14 || off > 14 {
				return nil, false
			}
			loc = time.FixedZone("UTC"+m[8], off*3600)
		}
	case "":
		if m[8] != "" {
			return nil, false
		}
	}
	// CET and CEST are read as the location's wall time: the status page
	// writes either whatever the season.
	t := time.Date(year, time.Month(month), day, hour, minute, 0, 0, loc)
	if t.Day() != day || int(t.Month()) != month {
		return nil, false // 31/02
	}
	return &t, false
}
