package templates

import (
	"errors"
	"slices"
	"sort"
	"strings"

	"golang.org/x/text/language"
)

// Coverage says how an update's languages cover its readers: which
// languages it carries, and for each language its audience reads, how
// many subscribers get the update in another language (a fallback).
type Coverage struct {
	// Carried lists the languages the update has a text in, in the
	// supported order. Empty when its language could not be told: every
	// reader then gets the whole text as published.
	Carried []string `json:"carried"`
	// Subscribers counts the readers.
	Subscribers int `json:"subscribers"`
	// Fallback counts the readers who get the update in another language
	// than theirs.
	Fallback int `json:"fallback"`
	// Locales has one row per language among the readers, most readers
	// first.
	Locales []LocaleCoverage `json:"locales"`
}

// LocaleCoverage is the coverage of the readers of one language.
type LocaleCoverage struct {
	// Locale is the readers' language: a supported locale ("it"), or the
	// language of tags that match none ("de", "und" for tags that do not
	// parse).
	Locale string `json:"locale"`
	// Carried is true when the update has a text in Locale.
	Carried bool `json:"carried"`
	// Subscribers counts the readers of Locale.
	Subscribers int `json:"subscribers"`
	// Fallback counts those of them who get the update in another
	// language: all of them when Carried is false.
	Fallback int `json:"fallback"`
	// WrittenIn is the language the fallback readers get the text in;
	// empty when there are none.
	WrittenIn string `json:"written_in,omitempty"`
}

// Coverage returns the update's coverage of readers, a count of
// subscribers per BCP 47 tag as they gave it ("fr-BE": 120). The update is
// prepared (split per language) as for rendering, and cached the same way.
func (r *Renderer) Coverage(u Update, readers map[string]int) (*Coverage, error) {
	if u.Event == nil {
		return nil, errors.New("templates: update without event")
	}
	p, err := r.prepared(u)
	if err != nil {
		return nil, err
	}
	cov := &Coverage{Carried: slices.Clone(p.available), Locales: []LocaleCoverage{}}
	if cov.Carried == nil {
		cov.Carried = []string{}
	}
	rows := map[string]*LocaleCoverage{}
	for tag, n := range readers {
		if n <= 0 {
			continue
		}
		matched, conf := r.locales.match(tag)
		lang, fallback := r.locales.choose(matched, conf, p.available)
		reader := matched
		if conf == language.No {
			reader = baseLanguage(tag)
		}
		row := rows[reader]
		if row == nil {
			row = &LocaleCoverage{Locale: reader, Carried: !fallback}
			rows[reader] = row
		}
		row.Subscribers += n
		cov.Subscribers += n
		if fallback {
			row.Carried = false
			row.Fallback += n
			row.WrittenIn = lang
			cov.Fallback += n
		}
	}
	for _, row := range rows {
		cov.Locales = append(cov.Locales, *row)
	}
	sort.Slice(cov.Locales, func(i, j int) bool {
		a, b := cov.Locales[i], cov.Locales[j]
		if a.Subscribers != b.Subscribers {
			return a.Subscribers > b.Subscribers
		}
		return a.Locale < b.Locale
	})
	return cov, nil
}

// Missing returns the languages of required (BCP 47 tags, matched as
// subscribers' tags are: "fr-BE" is carried by a French text) that the
// coverage's update does not carry, in the order given. An update whose
// language could not be told carries none.
func (r *Renderer) Missing(c *Coverage, required []string) []string {
	var out []string
	for _, lang := range required {
		matched, conf := r.locales.match(lang)
		if conf == language.No || !slices.Contains(c.Carried, matched) {
			out = append(out, lang)
		}
	}
	return out
}

// baseLanguage returns the language subtag of a BCP 47 tag ("de" for
// "de-CH"), or "und" when the tag does not parse.
func baseLanguage(tag string) string {
	t, err := language.Parse(strings.TrimSpace(tag))
	if err != nil {
		return "und"
	}
	b, _ := t.Base()
	return b.String()
}
