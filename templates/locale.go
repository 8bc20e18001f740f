package templates

import (
	"slices"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/text/language"
)

// locales matches subscribers' language tags to the supported locales.
type locales struct {
	names    []string // supported locales, matcher order
	tags     []language.Tag
	matcher  language.Matcher
	fallback []string // chain for unmatched tags, only supported locales

	// matches remembers match's answers: subscribers use few distinct
	// tags, and matching one costs microseconds.
	matches *lru.Cache[string, localeMatch]
}

// localeMatch is one remembered answer of match.
type localeMatch struct {
	name string
	conf language.Confidence
}

// maxRememberedMatches is the size of locales.matches.
const maxRememberedMatches = 4096

func newLocales(names, fallback []string) *locales {
	// The first supported tag is the matcher's default; put the
	// fallback chain first so ties go to it.
	ordered := make([]string, 0, len(names))
	for _, f := range fallback {
		if slices.Contains(names, f) && !slices.Contains(ordered, f) {
			ordered = append(ordered, f)
		}
	}
	for _, n := range names {
		if !slices.Contains(ordered, n) {
			ordered = append(ordered, n)
		}
	}
	matches, _ := lru.New[string, localeMatch](maxRememberedMatches) // only fails for size <= 0
	l := &locales{names: ordered, matches: matches}
	for _, n := range ordered {
		l.tags = append(l.tags, language.MustParse(n))
	}
	for _, f := range fallback {
		if slices.Contains(names, f) {
			l.fallback = append(l.fallback, f)
		}
	}
	l.matcher = language.NewMatcher(l.tags)
	return l
}

// match returns the supported locale for a subscriber's tag and the
// matcher's confidence. An unparsable tag, or one the matcher cannot
// match, gets the first locale of the fallback chain with confidence No.
func (l *locales) match(requested string) (string, language.Confidence) {
	if m, ok := l.matches.Get(requested); ok {
		return m.name, m.conf
	}
	name, conf := l.matchTag(requested)
	l.matches.Add(requested, localeMatch{name, conf})
	return name, conf
}

func (l *locales) matchTag(requested string) (string, language.Confidence) {
	tag, err := language.Parse(strings.TrimSpace(requested))
	if err != nil || requested == "" {
		return l.first(), language.No
	}
	_, i, conf := l.matcher.Match(tag)
	if conf == language.No {
		return l.first(), language.No
	}
	return l.names[i], conf
}

func (l *locales) first() string {
	if len(l.fallback) > 0 {
		return l.fallback[0]
	}
	return l.names[0]
}

// base returns the supported locale a text's tag ("en-GB", "fr") belongs
// to, or "" when it matches none (at least High confidence is required:
// a text is filed under a language only when it is written in it).
func (l *locales) base(tag string) string {
	t, err := language.Parse(tag)
	if err != nil {
		return ""
	}
	_, i, conf := l.matcher.Match(t)
	if conf < language.High {
		return ""
	}
	return l.names[i]
}

// choose returns the language to write a message in: the matched locale
// when the update has text in it, else the first language of the fallback
// chain the update has, else any language the update has (in supported
// order). available empty means the update's language is unknown: the
// matched locale is used. fallback is true when the result is not the
// matched locale or the match itself failed.
func (l *locales) choose(matched string, conf language.Confidence, available []string) (lang string, fallback bool) {
	unmatched := conf == language.No
	if len(available) == 0 || slices.Contains(available, matched) {
		return matched, unmatched
	}
	for _, f := range l.fallback {
		if slices.Contains(available, f) {
			return f, true
		}
	}
	for _, n := range l.names {
		if slices.Contains(available, n) {
			return n, true
		}
	}
	return matched, unmatched
}

// confidenceName returns "exact", "high", "low" or "no".
func confidenceName(c language.Confidence) string { return strings.ToLower(c.String()) }
