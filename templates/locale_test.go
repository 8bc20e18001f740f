package templates

import (
	"testing"

	"golang.org/x/text/language"
)

func TestLocaleMatch(t *testing.T) {
	t.Parallel()
	l := newLocales([]string{"en", "fr", "it"}, []string{"en", "fr"})
	for _, tc := range []struct {
		tag, want, conf string
	}{
		{"fr", "fr", "exact"},
		{"fr-FR", "fr", "exact"},
		{"fr-BE", "fr", "high"},
		{"fr-CA", "fr", "high"},
		{"it-CH", "it", "high"},
		{"en-GB", "en", "high"},
		{"en-US", "en", "exact"},
		{"FR-be", "fr", "high"},
		{"de-CH", "en", "no"},
		{"pt-BR", "en", "no"},
		{"", "en", "no"},
		{"not a tag!", "en", "no"},
		{"und", "en", "no"},
	} {
		for range 2 { // computed, then remembered
			lang, conf := l.match(tc.tag)
			if lang != tc.want || confidenceName(conf) != tc.conf {
				t.Errorf("match(%q) = %s, %s; want %s, %s", tc.tag, lang, confidenceName(conf), tc.want, tc.conf)
			}
		}
	}
	// A chain starting with French sends unknown tags to French.
	if lang, _ := newLocales([]string{"en", "fr", "it"}, []string{"fr", "en"}).match("de"); lang != "fr" {
		t.Errorf("fallback fr: got %s", lang)
	}
}

func TestLocaleChoose(t *testing.T) {
	t.Parallel()
	l := newLocales([]string{"en", "fr", "it"}, []string{"en", "fr"})
	for _, tc := range []struct {
		name      string
		matched   string
		conf      language.Confidence
		available []string
		want      string
		fallback  bool
	}{
		{"matched available", "it", language.High, []string{"fr", "en", "it"}, "it", false},
		{"matched missing: chain", "it", language.High, []string{"fr", "en"}, "en", true},
		{"matched missing: second of chain", "it", language.Exact, []string{"fr"}, "fr", true},
		{"chain missing: any", "fr", language.Exact, []string{"it"}, "it", true},
		{"unknown language of text", "it", language.High, nil, "it", false},
		{"unmatched tag", "en", language.No, []string{"fr", "en"}, "en", true},
		{"unmatched tag, text only french", "en", language.No, []string{"fr"}, "fr", true},
	} {
		got, fb := l.choose(tc.matched, tc.conf, tc.available)
		if got != tc.want || fb != tc.fallback {
			t.Errorf("%s: choose = %s, %v; want %s, %v", tc.name, got, fb, tc.want, tc.fallback)
		}
	}
}

func TestLocaleBase(t *testing.T) {
	t.Parallel()
	l := newLocales([]string{"en", "fr", "it"}, []string{"en", "fr"})
	for tag, want := range map[string]string{"fr": "fr", "fr-BE": "fr", "en-GB": "en", "it": "it", "de": "", "x!": ""} {
		if got := l.base(tag); got != want {
			t.Errorf("base(%q) = %q, want %q", tag, got, want)
		}
	}
}
