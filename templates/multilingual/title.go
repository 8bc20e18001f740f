package multilingual

import (
	"regexp"
	"strings"
)

var (
	// titlePrefix is the tag before a title ("INCIDENT PROCESSING |").
	titlePrefix = regexp.MustCompile(`^[^|]{1,60}?[ \t]+\|[ \t]+`)
	// titleSep separates the translations of a title: a slash with a
	// space on at least one side ("25/11" is a date).
	titleSep = regexp.MustCompile(`[ \t]+/[ \t]*|[ \t]*/[ \t]+`)
)

// SplitTitle cuts a title into its translations ("Perturbations paiement
// Oney / Oney payment disruptions / Perturbazioni pagamenti Oney"), after
// a prefix shared by every language ("INCIDENT PROCESSING |"). The
// translations' languages are identified; those identification is not
// sure of take the remaining languages in the configured order (the
// status page's). A title that is not a translation is one
// part in its identified language, or without language when it cannot be
// told.
func (s *Splitter) SplitTitle(title string) Result {
	var res Result
	rest := title
	if m := titlePrefix.FindString(title); m != "" {
		res.Prefix = strings.TrimSpace(m)
		rest = title[len(m):]
	}
	rest = strings.TrimSpace(rest)
	if parts, ok := s.translations(rest); ok {
		res.Parts = parts
		return res
	}
	lang, conf := s.id.identify(rest)
	if conf < s.cfg.MinConfidence {
		lang = ""
	}
	if rest != "" || res.Prefix != "" {
		res.Parts = []Part{{Lang: lang, Text: rest, Identified: lang != ""}}
	}
	return res
}

// translations splits a title into translations, or reports that it is
// not a list of translations.
func (s *Splitter) translations(title string) ([]Part, bool) {
	idx := titleSep.FindAllStringIndex(title, -1)
	n := len(idx) + 1
	if n < 2 || n > len(s.cfg.Languages) {
		return nil, false
	}
	type alt struct {
		marker, text string
		lang         string
		conf         float64
	}
	alts := make([]alt, 0, n)
	pos := 0
	marker := ""
	for _, m := range append(idx, []int{len(title), len(title)}) {
		a := alt{marker: marker, text: strings.TrimSpace(title[pos:m[0]])}
		if words(a.text) < 2 {
			return nil, false // "Nexo / Pax" is a name, not a translation
		}
		a.lang, a.conf = s.id.identify(a.text)
		alts = append(alts, a)
		marker = strings.TrimSpace(title[m[0]:m[1]])
		pos = m[1]
	}
	// Translations identified with confidence keep their language (two
	// in the same language are not translations); the others take the
	// remaining languages in the configured order.
	langs := make([]string, n)
	taken := map[string]bool{}
	for i, a := range alts {
		if a.lang == "" || a.conf < s.cfg.MinConfidence {
			continue
		}
		if taken[a.lang] {
			return nil, false
		}
		taken[a.lang] = true
		langs[i] = a.lang
	}
	next := 0
	for i := range alts {
		if langs[i] != "" {
			continue
		}
		for taken[s.cfg.Languages[next]] {
			next++
		}
		langs[i] = s.cfg.Languages[next]
		taken[langs[i]] = true
	}
	parts := make([]Part, n)
	for i, a := range alts {
		parts[i] = Part{Lang: langs[i], Marker: a.marker, Text: a.text, Identified: a.conf >= s.cfg.MinConfidence}
	}
	return parts, true
}
