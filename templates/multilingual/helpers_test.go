package multilingual

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode"
)

// corpusPath is a copy of the status page's history, one corpusUpdate per line.
const corpusPath = "../../examples/incidents.jsonl"

// corpusUpdate is the part of a corpus corpusUpdate the splitter reads.
type corpusUpdate struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Body  string `json:"body"`
}

func loadCorpus(tb testing.TB) []corpusUpdate {
	tb.Helper()
	f, err := os.Open(corpusPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []corpusUpdate
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var u corpusUpdate
		if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
			tb.Fatalf("%s:%d: %v", corpusPath, n, err)
		}
		out = append(out, u)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(out) < 100 {
		tb.Fatalf("corpus has %d updates", len(out))
	}
	return out
}

func newTestSplitter(tb testing.TB) *Splitter {
	tb.Helper()
	s, err := New(Config{})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// noSpace returns s without white space.
func noSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// reassemble returns the pieces of a result in order: header, prefix and
// each part's marker and text.
func reassemble(r Result) string {
	var b strings.Builder
	if r.Header != nil {
		b.WriteString(r.Header.Raw + " ")
	}
	b.WriteString(r.Prefix + " ")
	for _, p := range r.Parts {
		b.WriteString(p.Marker + " " + p.Text + " ")
	}
	return b.String()
}

// checkLossless fails when the result does not hold every character of
// the input, in order, white space aside.
func checkLossless(t *testing.T, what, input string, r Result) {
	t.Helper()
	if got, want := noSpace(reassemble(r)), noSpace(input); got != want {
		t.Errorf("%s: the parts do not hold the input\n got: %q\nwant: %q", what, got, want)
	}
}

// langsOf returns the languages of the parts, in order, one per run.
func langsOf(r Result) string {
	var out []string
	for _, p := range r.Parts {
		l := p.Lang
		if l == "" {
			l = "?"
		}
		if len(out) == 0 || out[len(out)-1] != l {
			out = append(out, l)
		}
	}
	return strings.Join(out, ",")
}
