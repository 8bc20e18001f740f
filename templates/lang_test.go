package templates

import (
	"strings"
	"unicode"
)

// stopwords are frequent words distinctive of each language (words shared
// by two of them, like "non" or "in", are left out). They give a simple,
// independent check that a rendered message is in one language.
var stopwords = map[string][]string{
	"fr": {"les", "des", "est", "sont", "nous", "vous", "une", "du", "et", "pour", "sur", "dans", "avec", "pas",
		"ont", "été", "au", "aux", "cette", "qui", "votre", "vos", "nos", "notre", "sera", "ces", "leur", "mais", "depuis"},
	"en": {"the", "is", "are", "we", "you", "an", "of", "and", "for", "with", "not", "have", "has", "been", "to",
		"this", "that", "which", "our", "your", "be", "will", "were", "was", "from", "by", "currently", "some"},
	"it": {"gli", "dei", "delle", "è", "sono", "noi", "una", "del", "per", "nel", "con", "hanno", "stato", "stata",
		"alla", "al", "questo", "che", "della", "di", "degli", "nella", "sul", "dal", "siamo", "vostri", "ancora"},
}

var stopwordLang = func() map[string]string {
	m := map[string]string{}
	for lang, words := range stopwords {
		for _, w := range words {
			m[w] = lang
		}
	}
	return m
}()

// foreignSentences returns the sentences of text that read as another
// language than lang: at least three stopwords of that language and more
// than twice as many as of lang.
func foreignSentences(text, lang string) []string {
	var out []string
	for _, s := range splitSentences(text) {
		counts := map[string]int{}
		for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' && r != '’' }) {
			w = strings.TrimLeft(w, "'’")
			if i := strings.IndexAny(w, "'’"); i >= 0 {
				w = w[i+len(string([]rune(w[i:])[0])):]
			}
			if l, ok := stopwordLang[w]; ok {
				counts[l]++
			}
		}
		for l, n := range counts {
			if l != lang && n >= 3 && n > 2*counts[lang] {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func splitSentences(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, s := range strings.SplitAfter(line, ". ") {
			if s = strings.TrimSpace(s); s != "" && !strings.HasPrefix(s, "http") {
				out = append(out, s)
			}
		}
	}
	return out
}
