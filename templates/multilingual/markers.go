package multilingual

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// languageNames maps the words that name a language in a marker
// ("ENGLISH VERSION", "VERSIONE ITALIANA", "In italiano :"), lower case,
// to the language's ISO 639-1 code.
var languageNames = map[string]string{
	"français": "fr", "francais": "fr", "française": "fr", "francaise": "fr", "french": "fr", "francese": "fr",
	"english": "en", "anglais": "en", "anglaise": "en", "inglese": "en",
	"italiano": "it", "italiana": "it", "italian": "it", "italien": "it", "italienne": "it", "italia": "it",
}

// nameLang returns the first language named by one of the words of label.
func nameLang(label string) string {
	if langs := namesIn(label); len(langs) > 0 {
		return langs[0]
	}
	return ""
}

// namesIn returns the languages the words of text name, in order.
func namesIn(text string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) }) {
		if l, ok := languageNames[w]; ok {
			out = append(out, l)
		}
	}
	return out
}

// namedLangs returns the languages a marker announces: the one it opens,
// or, for a note ("_English version below / Versione Italiana in
// calce_"), every language it names.
func namedLangs(text string, t token) []string {
	if t.kind != tokNote {
		if t.lang == "" {
			return nil
		}
		return []string{t.lang}
	}
	return namesIn(text)
}

// Kinds of structural tokens.
const (
	tokBanner = iota // ===== ENGLISH VERSION ===== or a rule of = or -
	tokCode          // FR, EN, IT
	tokIn            // In italiano :
	tokNote          // _English version below_
)

// token is a structural token of a body: a marker, a separator or a note.
type token struct {
	start, end int
	kind       int
	lang       string // the language it announces, "" for none
	colon      bool   // tokIn: ends with a colon
}

var (
	bannerRe = regexp.MustCompile(`={3,}[^=\n]{0,40}?={3,}|={3,}|[-—–_]{5,}`)
	inRe     = regexp.MustCompile(`(?i)(?:\*\*[ \t]*)?\bin[ \t]+(` + namesPattern() + `)\b[ \t]*(:?)(?:[ \t]*\*\*)?`)
	noteRe   = regexp.MustCompile(`(?:#[ \t]*)?_[^_\n]{1,120}_`)
	// Words of a note, between non-letters ('_' is a word character
	// for \b).
	noteWord = regexp.MustCompile(`(?i)(?:^|\PL)versione?(?:\PL|$)`)
	noteWhen = regexp.MustCompile(`(?i)(?:^|\PL)(?:below|calce|dessous|sotto|follows|suit|ci-après|seguito)(?:\PL|$)`)
)

func namesPattern() string {
	names := make([]string, 0, len(languageNames))
	for n := range languageNames {
		names = append(names, regexp.QuoteMeta(n))
	}
	// Longest first, so that "italiano" wins over "italia".
	slices.SortFunc(names, longestFirst)
	return strings.Join(names, "|")
}

// longestFirst orders strings longest first, then alphabetically.
func longestFirst(a, b string) int {
	if len(a) != len(b) {
		return len(b) - len(a)
	}
	return strings.Compare(a, b)
}

// codeRe matches the upper-case codes of the languages as markers.
func codeRe(langs []string) *regexp.Regexp {
	codes := make([]string, len(langs))
	for i, l := range langs {
		codes[i] = strings.ToUpper(l)
	}
	return regexp.MustCompile(`\b(` + strings.Join(codes, "|") + `)\b[ \t]*(:?)`)
}

// candidates returns the structural tokens of text, in order, without
// overlaps. Code markers and "In …" markers are candidates: validate
// decides which of them are markers.
func (s *Splitter) candidates(text string) []token {
	var toks []token
	for _, m := range bannerRe.FindAllStringIndex(text, -1) {
		seg := text[m[0]:m[1]]
		if seg[0] != '=' && adjacentPipe(text, m[0], m[1]) {
			continue // a Markdown table's | ----- | row
		}
		toks = append(toks, token{start: m[0], end: m[1], kind: tokBanner, lang: nameLang(seg)})
	}
	for _, m := range s.codes.FindAllStringSubmatchIndex(text, -1) {
		// A code stands alone: not glued to a word ("EN-GB", "IT's").
		if m[0] > 0 {
			if r, _ := utf8.DecodeLastRuneInString(text[:m[0]]); !unicode.IsSpace(r) && !strings.ContainsRune("*_(>.:;!?\"'»”", r) {
				continue
			}
		}
		if m[3] < len(text) {
			if r, _ := utf8.DecodeRuneInString(text[m[3]:]); !unicode.IsSpace(r) && r != ':' {
				continue
			}
		}
		toks = append(toks, token{start: m[0], end: m[1], kind: tokCode, lang: strings.ToLower(text[m[2]:m[3]]), colon: m[5] > m[4]})
	}
	for _, m := range inRe.FindAllStringSubmatchIndex(text, -1) {
		toks = append(toks, token{start: m[0], end: m[1], kind: tokIn, lang: languageNames[strings.ToLower(text[m[2]:m[3]])], colon: m[5] > m[4]})
	}
	for _, m := range noteRe.FindAllStringIndex(text, -1) {
		note := text[m[0]:m[1]]
		if noteWord.MatchString(note) && noteWhen.MatchString(note) && nameLang(note) != "" {
			toks = append(toks, token{start: m[0], end: m[1], kind: tokNote})
		}
	}
	// Order by position; on overlap keep the earliest, then the longest.
	slices.SortStableFunc(toks, func(a, b token) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return b.end - a.end
	})
	out := toks[:0]
	for _, t := range toks {
		if len(out) > 0 && t.start < out[len(out)-1].end {
			continue
		}
		out = append(out, t)
	}
	return out
}

// adjacentPipe reports whether the nearest non-blank characters around
// text[start:end] include a '|'.
func adjacentPipe(text string, start, end int) bool {
	before := strings.TrimRight(text[:start], " \t")
	after := strings.TrimLeft(text[end:], " \t")
	return strings.HasSuffix(before, "|") || strings.HasPrefix(after, "|")
}

// validate keeps the tokens that are markers. A banner or a note always
// is. A code ("EN") or an "In italiano" marker is one when it opens the
// text or follows another marker, when the text after it reads as the
// language it announces, or, for a code, when it follows the end of a
// sentence and the text after it does not read as another language.
func (s *Splitter) validate(text string, toks []token) []token {
	var out []token
	prevEnd := 0
	for i, t := range toks {
		if t.kind == tokBanner || t.kind == tokNote {
			out = append(out, t)
			prevEnd = t.end
			continue
		}
		next := len(text)
		if i+1 < len(toks) {
			next = toks[i+1].start
		}
		after := text[t.end:next]
		lang, conf := s.id.identify(after)
		before := strings.TrimSpace(text[prevEnd:t.start])
		opens := before == ""
		reads := lang == t.lang && conf >= s.cfg.MinConfidence
		other := lang != "" && lang != t.lang && conf >= s.cfg.MinConfidence
		ok := false
		switch t.kind {
		case tokCode:
			sentence := before != "" && strings.ContainsRune(".!?:»\"”)", lastRune(before))
			ok = opens || reads || (sentence && !other)
		case tokIn:
			ok = (opens && !other) || (t.colon && !other) || reads
		}
		if ok && letters(after) > 0 {
			out = append(out, t)
			prevEnd = t.end
		}
	}
	return out
}

func lastRune(s string) rune {
	r, _ := utf8.DecodeLastRuneInString(s)
	return r
}
