package multilingual

import (
	"strings"
	"unicode"

	"github.com/abadojack/whatlanggo"
)

// identifier tells the language of a text among the configured languages
// with whatlanggo's trigram profiles, restricted by its whitelist.
type identifier struct {
	langs []string
	codes map[string]whatlanggo.Lang
	names map[whatlanggo.Lang]string
	all   whatlanggo.Options
	// pairs holds the options restricted to two languages, for telling
	// where one language ends and another starts.
	pairs map[[2]string]whatlanggo.Options
}

// identifiable returns the whatlanggo code of an ISO 639-1 language, and
// whether whatlanggo has a profile of it.
func identifiable(code string) (whatlanggo.Lang, bool) {
	for l := whatlanggo.Lang(0); l <= whatlanggo.Zul; l++ {
		if l.Iso6391() == code {
			return l, true
		}
	}
	return -1, false
}

func newIdentifier(langs []string) *identifier {
	id := &identifier{
		langs: langs,
		codes: map[string]whatlanggo.Lang{},
		names: map[whatlanggo.Lang]string{},
		all:   whatlanggo.Options{Whitelist: map[whatlanggo.Lang]bool{}},
		pairs: map[[2]string]whatlanggo.Options{},
	}
	for _, code := range langs {
		l, _ := identifiable(code)
		id.codes[code] = l
		id.names[l] = code
		id.all.Whitelist[l] = true
	}
	for _, a := range langs {
		for _, b := range langs {
			if a != b {
				id.pairs[[2]string{a, b}] = whatlanggo.Options{Whitelist: map[whatlanggo.Lang]bool{id.codes[a]: true, id.codes[b]: true}}
			}
		}
	}
	return id
}

// identify returns the language of text and whatlanggo's confidence
// (0 to 1). It returns "" and 0 for a text without letters. With a single
// configured language every text with letters is in it.
func (id *identifier) identify(text string) (string, float64) {
	return id.detect(text, id.all)
}

// identifyPair is identify restricted to the languages a and b.
func (id *identifier) identifyPair(text, a, b string) (string, float64) {
	opts, ok := id.pairs[[2]string{a, b}]
	if !ok {
		return id.identify(text)
	}
	return id.detect(text, opts)
}

func (id *identifier) detect(text string, opts whatlanggo.Options) (string, float64) {
	if letters(text) == 0 {
		return "", 0
	}
	if len(id.langs) == 1 {
		return id.langs[0], 1
	}
	info := whatlanggo.DetectWithOptions(text, opts)
	lang, ok := id.names[info.Lang]
	// A confidence of 0 means a tie between the best two languages: the
	// language whatlanggo returns then depends on map order. Never use it.
	if !ok || info.Confidence <= 0 {
		return "", 0
	}
	return lang, info.Confidence
}

// letters counts the letters of s.
func letters(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsLetter(r) {
			n++
		}
	}
	return n
}

// words counts the words of s that hold a letter.
func words(s string) int {
	n := 0
	in, letter := false, false
	for _, r := range s {
		if unicode.IsSpace(r) {
			if in && letter {
				n++
			}
			in, letter = false, false
			continue
		}
		in = true
		if unicode.IsLetter(r) {
			letter = true
		}
	}
	if in && letter {
		n++
	}
	return n
}

// Identifiable reports whether lang, an ISO 639-1 code, is a language the
// identifier knows and a Splitter can be configured with.
func Identifiable(lang string) bool {
	_, ok := identifiable(lang)
	return ok && lang != "" && lang == strings.ToLower(lang)
}
