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

// TestLongBodySplitsInLinearTime: splitting grows with the text, not with
// its square. Bodies may be 256 KiB; the split runs in the delivery loop.
// The check is on the growth (four times the text, under eight times the
// time), not on a duration.
func TestLongBodySplitsInLinearTime(t *testing.T) {
	s := newTestSplitter(t)
	took := func(size int) time.Duration {
		body := longTwoLanguageBody(size)
		start := time.Now()
		r := s.SplitBody(body)
		d := time.Since(start)
		if len(r.Parts) == 0 {
			t.Fatalf("%d bytes: no parts", size)
		}
		return d
	}
	took(4 << 10) // warm up
	small, large := took(8<<10), took(32<<10)
	t.Logf("8 KiB: %v, 32 KiB: %v", small, large)
	if large > 8*small+50*time.Millisecond {
		t.Errorf("4× the text took %.1f× the time (8 KiB %v, 32 KiB %v): the split is not linear", float64(large)/float64(small), small, large)
	}
}
