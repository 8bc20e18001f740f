package portal

import (
	"embed"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"golang.org/x/text/language"
)

//go:embed locales/*.toml
var localeFiles embed.FS

// Locales are the languages of the pages, the fallback first.
var Locales = []string{"en", "fr", "it"}

// strings holds the page strings of every locale, by "table.key".
type catalogs map[string]map[string]string

// loadCatalogs reads the embedded catalogs and checks that every locale
// has the reference's (English) keys and no other.
func loadCatalogs() (catalogs, error) {
	cats := catalogs{}
	for _, lang := range Locales {
		data, err := localeFiles.ReadFile("locales/" + lang + ".toml")
		if err != nil {
			return nil, err
		}
		var raw map[string]map[string]string
		if _, err := toml.Decode(string(data), &raw); err != nil {
			return nil, fmt.Errorf("portal: locales/%s.toml: %w", lang, err)
		}
		flat := map[string]string{}
		for table, entries := range raw {
			for k, v := range entries {
				flat[table+"."+k] = v
			}
		}
		cats[lang] = flat
	}
	for _, lang := range Locales[1:] {
		for k := range cats["en"] {
			if _, ok := cats[lang][k]; !ok {
				return nil, fmt.Errorf("portal: locales/%s.toml lacks %s", lang, k)
			}
		}
		for k := range cats[lang] {
			if _, ok := cats["en"][k]; !ok {
				return nil, fmt.Errorf("portal: locales/%s.toml has %s, unknown in en.toml", lang, k)
			}
		}
	}
	return cats, nil
}

// text returns the string of key in lang with its {name} placeholders
// filled from name, value pairs; a missing key shows as [key].
func (c catalogs) text(lang, key string, args ...string) string {
	s, ok := c[lang][key]
	if !ok {
		return "[" + key + "]"
	}
	for i := 0; i+1 < len(args); i += 2 {
		s = strings.ReplaceAll(s, "{"+args[i]+"}", args[i+1])
	}
	return s
}

var (
	localeTags    = []language.Tag{language.English, language.French, language.Italian}
	localeMatcher = language.NewMatcher(localeTags)
)

// matchLocale returns the supported locale closest to the BCP 47 tags
// given, in order of preference (an Accept-Language header, a subscriber's
// locale); English when none matches.
func matchLocale(prefs ...string) string {
	for _, p := range prefs {
		if p == "" {
			continue
		}
		if slices.Contains(Locales, p) {
			return p
		}
		tags, _, err := language.ParseAcceptLanguage(p)
		if err != nil || len(tags) == 0 {
			continue
		}
		_, i, conf := localeMatcher.Match(tags...)
		if conf != language.No {
			return Locales[i]
		}
	}
	return Locales[0]
}

// pageLocale is the language of a page: the "lang" parameter (the
// language switch, or a form's hidden field), else the preferred one
// (a subscriber's locale), else the browser's Accept-Language.
func pageLocale(r *http.Request, preferred string) string {
	if l := r.FormValue("lang"); slices.Contains(Locales, l) {
		return l
	}
	return matchLocale(preferred, r.Header.Get("Accept-Language"))
}
