package multilingual

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // header times are Europe/Paris wall times on every machine
)

// DefaultLanguages are the languages the status page writes, in the order
// it writes them.
var DefaultLanguages = []string{"fr", "en", "it"}

// Default values of Config fields.
const (
	// DefaultLocation is the zone of header times written without a zone
	// or as CET/CEST.
	DefaultLocation = "Europe/Paris"
	// DefaultMinConfidence is the identification confidence below which
	// a text's language is not taken as told.
	DefaultMinConfidence = 0.5
)

// Config configures a [Splitter].
type Config struct {
	// Languages are the languages texts are split into, as ISO 639-1
	// codes, in the order the status page writes them: a translated
	// title whose parts cannot be identified is matched to them in this
	// order. Identification is restricted to them, and every one must be
	// known to the identifier (whatlanggo). Defaults to
	// [DefaultLanguages] (fr, en, it).
	Languages []string
	// Location is the zone of header times written without a zone or as
	// CET/CEST. Defaults to Europe/Paris.
	Location *time.Location
	// MinConfidence is the identification confidence (0 to 1) from
	// which a text's language is taken as told. Defaults to
	// [DefaultMinConfidence].
	MinConfidence float64
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if len(c.Languages) == 0 {
		c.Languages = slices.Clone(DefaultLanguages)
	}
	if c.Location == nil {
		c.Location, _ = time.LoadLocation(DefaultLocation)
	}
	if c.MinConfidence == 0 {
		c.MinConfidence = DefaultMinConfidence
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, l := range c.Languages {
		if !Identifiable(l) {
			errs = append(errs, fmt.Errorf("languages: %q is not an ISO 639-1 code the identifier knows", l))
		}
		if seen[l] {
			errs = append(errs, fmt.Errorf("languages: %q is listed twice", l))
		}
		seen[l] = true
	}
	if c.Location == nil {
		errs = append(errs, errors.New("location: none (the zone database has no "+DefaultLocation+")"))
	}
	if c.MinConfidence < 0 || c.MinConfidence > 1 {
		errs = append(errs, fmt.Errorf("min confidence: %v is not between 0 and 1", c.MinConfidence))
	}
	return errors.Join(errs...)
}

// Splitter cuts multilingual titles and bodies into per-language parts.
// It is safe for concurrent use.
type Splitter struct {
	cfg   Config
	id    *identifier
	codes *regexp.Regexp
}

// New returns a Splitter for cfg.
func New(cfg Config) (*Splitter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("multilingual: %w", err)
	}
	cfg.Languages = slices.Clone(cfg.Languages)
	return &Splitter{cfg: cfg, id: newIdentifier(cfg.Languages), codes: codeRe(cfg.Languages)}, nil
}

// Languages returns the configured languages.
func (s *Splitter) Languages() []string { return slices.Clone(s.cfg.Languages) }

func (s *Splitter) supported(lang string) bool { return slices.Contains(s.cfg.Languages, lang) }

// Identify returns the language of text among the configured languages
// and the identifier's confidence (0 to 1); "" and 0 when the text has no
// letters or the identifier cannot choose.
func (s *Splitter) Identify(text string) (lang string, confidence float64) {
	return s.id.identify(text)
}

// Part is a piece of a text in one language.
type Part struct {
	// Lang is the part's language (ISO 639-1), "" when it could not be
	// told (then the part is the text's only part).
	Lang string
	// Marker is the structure that announced the part, as written: a
	// language marker ("EN", "In italiano :"), a separator
	// ("==============ENGLISH VERSION==============", "------"), a note
	// ("_English version below_") or, in a title, the "/" between
	// translations. Markers are not part of the text.
	Marker string
	// Text is the part's text, as written, trimmed.
	Text string
	// Identified is true when Lang was told by language identification
	// rather than by a marker.
	Identified bool
}

// Result is a split text. Header (bodies), Prefix (titles) and the
// parts' Marker and Text, in order, hold the whole input: nothing is
// dropped but white space.
type Result struct {
	// Header is the body's parsed header, nil when it has none.
	Header *Header
	// Prefix is the part of a title shared by every language
	// ("INCIDENT PROCESSING |"), "" when none.
	Prefix string
	// Parts are the pieces in the order of the input.
	Parts []Part
}

// Languages returns the languages the text has text in, in the
// configured order. It is empty when the language could not be told.
func (r Result) Languages(order []string) []string {
	var out []string
	for _, l := range order {
		for _, p := range r.Parts {
			if p.Lang == l && p.Text != "" {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// Texts returns the text in each language: its parts joined by a blank
// line (a space between the pieces of one unmarked text), after the
// title's prefix. Parts whose language could not be told
// are left out: an empty map means the text should be sent whole.
func (r Result) Texts() map[string]string {
	out := map[string]string{}
	for i, p := range r.Parts {
		if p.Lang == "" || p.Text == "" {
			continue
		}
		if prev, ok := out[p.Lang]; ok {
			sep := "\n\n"
			if p.Marker == "" && i > 0 && r.Parts[i-1].Lang == p.Lang {
				sep = " " // one text cut where identification hesitated
			}
			out[p.Lang] = prev + sep + p.Text
			continue
		}
		out[p.Lang] = p.Text
		if r.Prefix != "" {
			out[p.Lang] = r.Prefix + " " + p.Text
		}
	}
	return out
}

// SplitBody cuts a body into per-language parts and parses its shared
// header. Languages are told by markers ("FR … EN … IT …", "In italiano
// :"), separators naming a language ("==============ENGLISH
// VERSION=============="), and, for text that no marker announces, by
// language identification sentence by sentence. When no language can be
// told every part has an empty Lang (and Texts is empty).
func (s *Splitter) SplitBody(text string) Result {
	var res Result
	body := text
	if h, end := s.parseHeader(text); h != nil {
		res.Header = h
		body = text[end:]
	}
	toks := s.validate(body, s.candidates(body))
	// Segments: the text between markers; consecutive markers form one.
	type segment struct {
		marker, text string
		lang         string
	}
	var segs []segment
	var cur segment
	pos := 0
	for _, t := range toks {
		if between := strings.TrimSpace(body[pos:t.start]); between != "" {
			cur.text = between
			segs = append(segs, cur)
			cur = segment{}
		}
		cur.marker = joinSpace(cur.marker, body[t.start:t.end])
		if t.lang != "" {
			cur.lang = t.lang
		}
		pos = t.end
	}
	cur.text = strings.TrimSpace(body[pos:])
	segs = append(segs, cur)

	marked := map[string]bool{}
	for _, t := range toks {
		for _, l := range namedLangs(body[t.start:t.end], t) {
			marked[l] = true
		}
	}
	for _, sg := range segs {
		if sg.marker == "" && sg.text == "" {
			continue
		}
		if sg.lang != "" && s.supported(sg.lang) {
			res.Parts = append(res.Parts, Part{Lang: sg.lang, Marker: sg.marker, Text: sg.text})
			continue
		}
		parts := s.identifyBlocks(sg.text, marked)
		if len(parts) == 0 {
			parts = []Part{{Text: sg.text}}
		}
		parts[0].Marker = joinSpace(sg.marker, parts[0].Marker)
		res.Parts = append(res.Parts, parts...)
	}
	// Text whose language could not be told takes its neighbour's; when
	// no language is known at all, the parts stay without.
	res.Parts = absorbUnknown(res.Parts)
	return res
}

// absorbUnknown gives the parts whose language could not be told the
// language of the previous part (or of the next one at the start). When no
// part has a language, the parts are left without.
func absorbUnknown(parts []Part) []Part {
	next := ""
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i].Lang != "" {
			next = parts[i].Lang
		}
	}
	prev := next
	for i := range parts {
		if parts[i].Lang == "" {
			parts[i].Lang = prev
			continue
		}
		prev = parts[i].Lang
	}
	return parts
}

// joinSpace joins the non-empty strings with a space.
func joinSpace(ss ...string) string {
	var b strings.Builder
	for _, s := range ss {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}
