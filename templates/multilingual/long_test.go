package multilingual

import (
	"strings"
	"testing"
	"time"
)

// longTwoLanguageBody is one long French sentence then one long English
// sentence, with capitalised words all along: the worst case for the
// search of a switch inside a sentence.
func longTwoLanguageBody(size int) string {
	var b strings.Builder
	for b.Len() < size/2 {
		b.WriteString("Nous enquêtons sur un incident qui touche les paiements par carte chez Paris Nexo et les équipes sont mobilisées pour rétablir le service ")
	}
	b.WriteString(". ")
	for b.Len() < size {
		b.WriteString("We are investigating an incident affecting card payments at London Nexo and the teams are working to restore the service ")
	}
	return b.String()
}

// TestLongBodySplits: a long body (64 KiB of one sentence per language) splits into its two
// languages. The search for a switch inside a sentence identifies a window
// each side of every candidate cut (cutWindow), so its work grows with the
// text, not with its square (before, 32 KiB took 2.5 s and 256 KiB minutes).
func TestLongBodySplits(t *testing.T) {
	s := newTestSplitter(t)
	start := time.Now()
	r := s.SplitBody(longTwoLanguageBody(64 << 10))
	t.Logf("64 KiB split in %v", time.Since(start))
	var langs []string
	for _, p := range r.Parts {
		langs = append(langs, p.Lang)
	}
	if got := strings.Join(langs, ","); got != "fr,en" {
		t.Errorf("parts %s, want fr,en", got)
	}
}

func TestCutWindow(t *testing.T) {
	long := strings.Repeat("mot ", 1000) // 4000 bytes
	for _, tc := range []struct {
		name string
		s    string
		head bool
		want func(string) bool
	}{
		{"short head kept", "deux mots", true, func(w string) bool { return w == "deux mots" }},
		{"short tail kept", "deux mots", false, func(w string) bool { return w == "deux mots" }},
		{"long head: its end, whole words", long, true, func(w string) bool {
			return len(w) <= cutWindowBytes && strings.HasSuffix(long, w) && strings.HasPrefix(w, "mot ")
		}},
		{"long tail: its start, whole words", long, false, func(w string) bool {
			return len(w) <= cutWindowBytes && strings.HasPrefix(long, w) && strings.HasSuffix(w, "mot")
		}},
	} {
		if w := cutWindow(tc.s, tc.head); !tc.want(w) {
			t.Errorf("%s: %q", tc.name, w)
		}
	}
}
