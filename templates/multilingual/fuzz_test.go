package multilingual

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fuzzSeeds are texts that exercise the markers, the header and the
// identification, besides the corpus.
var fuzzSeeds = []string{
	"",
	"FR",
	"FR EN IT",
	"EN :",
	"==============",
	"=== ===",
	"----- | ----- |",
	"_English version below_",
	"# _English version below / Versione Italiana in calce_ #",
	"In italiano :",
	"**In Italiano :**",
	"Début / Start : 31/12/2025 23h59 CET - Fin / End : 01/01/2026 12.00PM UTC+14",
	"Début / Start : 29/02/2024 - Fin / End : 30/02/2024 - Priorité / Priority : P9",
	"X-1 - Début / Start : - Fin / End :",
	"Début/Start/Inizio:1/1/1 0h - Fin/End/Fine:99/99/9999 99:99 PM",
	"Bonjour, Hello, Buongiorno,",
	"A / B / C / D",
	"Perturbations / Disruptions",
	"\xff\xfe FR \x80 EN \xc3",
}

func addSeeds(f *testing.F, texts func(corpusUpdate) string) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, u := range loadCorpus(f) {
		f.Add(texts(u))
	}
}

func FuzzSplitBody(f *testing.F) {
	addSeeds(f, func(u corpusUpdate) string { return u.Body })
	s := newTestSplitter(f)
	f.Fuzz(func(t *testing.T, in string) {
		r := s.SplitBody(in)
		checkResult(t, s, in, r)
		if h := r.Header; h != nil {
			if h.Raw == "" || !strings.Contains(in, h.Raw) {
				t.Errorf("header raw %q is not in the input", h.Raw)
			}
			if h.Start != nil && h.StartText == "" || h.End != nil && h.EndText == "" {
				t.Errorf("date without its text: %+v", h)
			}
			if h.Ongoing && h.End != nil {
				t.Errorf("ongoing with an end: %+v", h)
			}
		}
		if again := s.SplitBody(in); !reflect.DeepEqual(again, r) {
			t.Errorf("not deterministic:\n%+v\n%+v", r, again)
		}
	})
}

func FuzzSplitTitle(f *testing.F) {
	addSeeds(f, func(u corpusUpdate) string { return u.Title })
	s := newTestSplitter(f)
	f.Fuzz(func(t *testing.T, in string) {
		r := s.SplitTitle(in)
		checkResult(t, s, in, r)
		if r.Header != nil {
			t.Error("a title has no header")
		}
		if again := s.SplitTitle(in); !reflect.DeepEqual(again, r) {
			t.Errorf("not deterministic:\n%+v\n%+v", r, again)
		}
	})
}

// checkResult checks what holds for every split: nothing lost, parts
// trimmed, languages configured, and a language for every part or none.
func checkResult(t *testing.T, s *Splitter, in string, r Result) {
	t.Helper()
	checkLossless(t, "split", in, r)
	unknown := 0
	for _, p := range r.Parts {
		if p.Lang == "" {
			unknown++
		} else if !slices.Contains(s.Languages(), p.Lang) {
			t.Errorf("part in %q", p.Lang)
		}
		if strings.TrimSpace(p.Text) != p.Text || strings.TrimSpace(p.Marker) != p.Marker {
			t.Errorf("part not trimmed: %+v", p)
		}
	}
	if unknown > 0 && unknown != len(r.Parts) {
		t.Errorf("%d of %d parts without language: %+v", unknown, len(r.Parts), r.Parts)
	}
	for lang, text := range r.Texts() {
		if !slices.Contains(s.Languages(), lang) || text == "" {
			t.Errorf("text %q in %q", text, lang)
		}
	}
}
