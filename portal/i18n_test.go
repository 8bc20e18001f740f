package portal

import (
	"net/http/httptest"
	"slices"
	"testing"
)

func TestMatchLocale(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prefs []string
		want  string
	}{
		{[]string{"fr-BE"}, "fr"},
		{[]string{"it-CH,it;q=0.9,en;q=0.5"}, "it"},
		{[]string{"", "de-DE,fr;q=0.4"}, "fr"},
		{[]string{"de"}, "en"},
		{[]string{"xx-!!"}, "en"},
		{nil, "en"},
	} {
		if got := matchLocale(tc.prefs...); got != tc.want {
			t.Errorf("matchLocale(%q) = %q, want %q", tc.prefs, got, tc.want)
		}
	}
	r := httptest.NewRequest("GET", "/subscribe?lang=it", nil)
	r.Header.Set("Accept-Language", "fr")
	if got := pageLocale(r, "en"); got != "it" {
		t.Errorf("the language switch loses: %q", got)
	}
	r = httptest.NewRequest("GET", "/subscribe?lang=xx", nil)
	r.Header.Set("Accept-Language", "fr")
	if got := pageLocale(r, ""); got != "fr" {
		t.Errorf("Accept-Language: %q", got)
	}
}

// TestCatalogsComplete: every locale has every page string, none empty.
func TestCatalogsComplete(t *testing.T) {
	t.Parallel()
	cats, err := loadCatalogs()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range Locales {
		for k, v := range cats[l] {
			if v == "" {
				t.Errorf("%s: %s is empty", l, k)
			}
		}
	}
	if !slices.Equal(Locales, []string{"en", "fr", "it"}) {
		t.Fatal("locales changed: update the language switch names")
	}
}

func FuzzMatchLocale(f *testing.F) {
	f.Add("fr-BE,fr;q=0.9")
	f.Add("*;q=0")
	f.Fuzz(func(t *testing.T, s string) {
		if got := matchLocale(s); !slices.Contains(Locales, got) {
			t.Fatalf("matchLocale(%q) = %q", s, got)
		}
	})
}
