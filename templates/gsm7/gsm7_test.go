package gsm7

import (
	"strings"
	"testing"
	"unicode/utf16"
)

func TestSeptets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		chars string
		want  int
	}{
		// In GSM-7 although French/Italian: they stay one septet.
		{"éèàùìòÉñüöäÇÄÖÑÜÅåØøÆæß@£$¥¤§¡¿_ΔΦΓΛΩΠΨΣΘΞ\n\r", 1},
		{"azAZ09 !\"#%&'()*+,-./:;<=>?", 1},
		// The extension table: two septets.
		{"^{}\\[~]|€\f", 2},
		// Outside GSM-7: force UCS-2.
		{"âêîôûëïœçÈÀÌÒÙ«»’“”…\u00a0\u202f`\t\x00\x7f😀", 0},
	} {
		for _, r := range tc.chars {
			if got := Septets(r); got != tc.want {
				t.Errorf("Septets(%q) = %d, want %d", r, got, tc.want)
			}
		}
	}
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want Count
	}{
		{"empty", "", Count{}},
		{"one char", "a", Count{GSM7, 1, 1}},
		{"160 septets single", strings.Repeat("a", 160), Count{GSM7, 160, 1}},
		{"161 septets split", strings.Repeat("a", 161), Count{GSM7, 161, 2}},
		{"306 septets two parts", strings.Repeat("a", 306), Count{GSM7, 306, 2}},
		{"307 septets three parts", strings.Repeat("a", 307), Count{GSM7, 307, 3}},
		{"80 euros fill 160", strings.Repeat("€", 80), Count{GSM7, 160, 1}},
		{"81 euros", strings.Repeat("€", 81), Count{GSM7, 162, 2}},
		// 152 septets then an escape pair: the pair does not fit in the
		// first part (153) and moves to the second.
		{"escape pair not split", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), Count{GSM7, 306, 3}},
		{"escape pair fits", strings.Repeat("a", 151) + "€" + strings.Repeat("a", 153), Count{GSM7, 306, 2}},
		{"form feed counts two", "a\fb", Count{GSM7, 4, 1}},
		{"accents in gsm7", "é è à ù ì ò É ñ ü ö ä Ç", Count{GSM7, 23, 1}},
		{"lowercase ç forces ucs2", "reçu", Count{UCS2, 4, 1}},
		{"70 ucs2 single", strings.Repeat("ê", 70), Count{UCS2, 70, 1}},
		{"71 ucs2 split", strings.Repeat("ê", 71), Count{UCS2, 71, 2}},
		{"134 ucs2 two parts", strings.Repeat("ê", 134), Count{UCS2, 134, 2}},
		{"135 ucs2 three parts", strings.Repeat("ê", 135), Count{UCS2, 135, 3}},
		{"emoji two units", "😀", Count{UCS2, 2, 1}},
		{"35 emoji fill 70", strings.Repeat("😀", 35), Count{UCS2, 70, 1}},
		// 66 units then a surrogate pair: the pair moves to part two.
		{"surrogate pair not split", strings.Repeat("ê", 66) + "😀" + strings.Repeat("ê", 66), Count{UCS2, 134, 3}},
		{"nbsp forces ucs2", "10\u00a0h", Count{UCS2, 4, 1}},
		{"extension chars counted once in ucs2", "€ê", Count{UCS2, 2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Measure(tc.in); got != tc.want {
				t.Fatalf("Measure = %+v, want %+v", got, tc.want)
			}
			if tc.want.Encoding == UCS2 {
				if n := len(utf16.Encode([]rune(tc.in))); n != tc.want.Units {
					t.Fatalf("utf16 length %d, want %d", n, tc.want.Units)
				}
			}
		})
	}
}

func TestTransliterate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"déjà vu", "déjà vu", true},
		{"L’incident est résolu…", "L'incident est résolu...", true},
		{"« Paiement » reçu", `" Paiement " recu`, true},
		{"Fenêtre de maintenance, cœur du système", "Fenetre de maintenance, coeur du système", true},
		{"È stato risolto", "E' stato risolto", true},
		{"14\u00a0h\u202f30 – fin", "14 h 30 - fin", true},
		{"“quoted” ‘single’", `"quoted" 'single'`, true},
		{"À bientôt, Noël, maïs, dû", "A bientot, Noel, mais, du", true},
		{"Ça marche", "Ça marche", true},
		{"emoji 😀 stays, ê too", "emoji 😀 stays, e too", false},
		{"中文", "中文", false},
	} {
		got, ok := Transliterate(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Transliterate(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if ok && !Valid(got) {
			t.Errorf("Transliterate(%q) reported GSM-7 but %q is not", tc.in, got)
		}
	}
}

func TestEncodingString(t *testing.T) {
	t.Parallel()
	if GSM7.String() != "GSM-7" || UCS2.String() != "UCS-2" {
		t.Fatalf("got %s %s", GSM7, UCS2)
	}
}

// FuzzMeasure checks the counting invariants on arbitrary text.
func FuzzMeasure(f *testing.F) {
	for _, s := range []string{"", "a", "€", "ê", "😀", strings.Repeat("a€", 100), "L’incident…"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Measure(s)
		if s == "" {
			if c != (Count{}) {
				t.Fatalf("empty: %+v", c)
			}
			return
		}
		single, part := GSM7Single, GSM7Part
		if c.Encoding == UCS2 {
			single, part = UCS2Single, UCS2Part
		}
		if c.Units <= single && c.Segments != 1 {
			t.Fatalf("%d units in %d segments", c.Units, c.Segments)
		}
		if c.Units > single && (c.Segments < (c.Units+part-1)/part || c.Segments > c.Units/(part-1)+1) {
			t.Fatalf("%d units in %d segments", c.Units, c.Segments)
		}
		if out, ok := Transliterate(s); ok {
			if !Valid(out) || Measure(out).Encoding != GSM7 {
				t.Fatalf("transliteration %q is not GSM-7", out)
			}
		}
	})
}
