package multilingual

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/heraldhq/herald/internal/golden"
)

// TestCorpusGolden splits every title and body of the corpus and compares
// the result with testdata/golden/corpus.txt (go test -run
// TestCorpusGolden -update rewrites it).
func TestCorpusGolden(t *testing.T) {
	t.Parallel()
	s := newTestSplitter(t)
	var b bytes.Buffer
	for _, u := range loadCorpus(t) {
		writeSplit(&b, u.ID, s.SplitTitle(u.Title), s.SplitBody(u.Body))
	}
	golden.Check(t, filepath.Join("testdata", "golden", "corpus.txt"), b.Bytes())
}

// writeSplit writes a split update in a form to read and review.
func writeSplit(b *bytes.Buffer, id string, title, body Result) {
	fmt.Fprintf(b, "== %s\n", id)
	fmt.Fprintf(b, "title (prefix %q):\n", title.Prefix)
	writeParts(b, title.Parts)
	if h := body.Header; h != nil {
		fmt.Fprintf(b, "header: reference %q, priority %q\n", h.Reference, h.Priority)
		fmt.Fprintf(b, "  start %s %q\n", headerTime(h.Start, h.StartDateOnly), h.StartText)
		fmt.Fprintf(b, "  end %s %q ongoing %v\n", headerTime(h.End, h.EndDateOnly), h.EndText, h.Ongoing)
		fmt.Fprintf(b, "  category %s\n  responsibility %s\n", perLang(h.Category), perLang(h.Responsibility))
	}
	b.WriteString("body:\n")
	writeParts(b, body.Parts)
}

func writeParts(b *bytes.Buffer, parts []Part) {
	for _, p := range parts {
		lang := p.Lang
		if lang == "" {
			lang = "??"
		}
		how := "marked"
		if p.Identified {
			how = "identified"
		}
		fmt.Fprintf(b, "  [%s %s] marker %q\n    %s\n", lang, how, p.Marker, p.Text)
	}
}

func headerTime(t *time.Time, dateOnly bool) string {
	switch {
	case t == nil:
		return "-"
	case dateOnly:
		return t.Format(time.DateOnly)
	}
	return t.UTC().Format(time.RFC3339)
}

func perLang(m map[string]string) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return "{" + strings.Join(out, " ") + "}"
}

// TestCorpusLossless checks over the whole corpus that nothing of a title
// or body is lost across the header, the prefix and the parts, in order,
// and that every word of a header is either a label or in one of its
// fields.
func TestCorpusLossless(t *testing.T) {
	t.Parallel()
	s := newTestSplitter(t)
	for _, u := range loadCorpus(t) {
		title, body := s.SplitTitle(u.Title), s.SplitBody(u.Body)
		checkLossless(t, u.ID+" title", u.Title, title)
		checkLossless(t, u.ID+" body", u.Body, body)
		for _, r := range []Result{title, body} {
			for _, p := range r.Parts {
				if p.Lang != "" && !slices.Contains(s.Languages(), p.Lang) {
					t.Errorf("%s: part in %q", u.ID, p.Lang)
				}
			}
		}
		if h := body.Header; h != nil {
			checkHeaderWords(t, u.ID, h)
		}
	}
}

// checkHeaderWords fails when a word of the header is neither a label
// word nor in a field.
func checkHeaderWords(t *testing.T, id string, h *Header) {
	t.Helper()
	var fields []string
	fields = append(fields, h.Reference, h.StartText, h.EndText, h.Priority)
	for _, m := range []map[string]string{h.Category, h.Responsibility} {
		for _, v := range m {
			fields = append(fields, v)
		}
	}
	known := map[string]bool{}
	for _, f := range fields {
		for _, w := range headerWords(f) {
			known[w] = true
		}
	}
	for _, w := range headerWords(h.Raw) {
		if _, label := labelWords[w]; !label && !known[w] {
			t.Errorf("%s: header word %q is in no field (%q)", id, w, h.Raw)
		}
	}
}

func headerWords(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// TestCorpusLanguages checks, for updates whose languages a reader
// verified, the languages of the title and body parts.
func TestCorpusLanguages(t *testing.T) {
	t.Parallel()
	s := newTestSplitter(t)
	want := map[string][2]string{ // id: title languages, body languages
		"TSR-1723:1":     {"fr,en,it", "fr,en,it"}, // header, FR/EN/IT
		"TSR-1572:4":     {"fr,en", "fr,en,it"},    // note, ENGLISH VERSION / VERSIONE ITALIANA
		"TSR-1532:1":     {"fr,en,it", "fr,en,it"}, // header with priority
		"TSR-1177:1":     {"fr,en", "fr,en"},       // EN without a full stop before it
		"TSR-1177:3":     {"fr,en", "en"},          // English only
		"INC-c6ae3bdc:1": {"fr", "fr,it,en"},       // rules, no marker
		"INC-2f9cd51f:1": {"fr,en", "fr,en"},       // rule then FR
		"INC-4e9215cd:1": {"fr", "fr,it"},          // rule then "In italiano:"
		"INC-13cbe58a:3": {"fr", "fr,it"},          // "In Italian" without colon
		"INC-08274413:1": {"fr", "fr,it"},          // no marker at all
		"INC-08274413:5": {"fr", "fr,it"},          // "—---- **In Italiano :**"
		"INC-80077770:1": {"?", "fr,it"},           // title whose language cannot be told
		"INC-e9b27044:1": {"fr,en", "fr,en,it"},    // header without reference, VERSION FRANCAISE / ITALIA
		"INC-e9b27044:2": {"fr,en", "fr,en"},       // "FR :"
		"INC-03f1a9b4:1": {"fr", "fr,en"},          // header, unmarked French, ENGLISH VERSION
		"INC-03f1a9b4:5": {"fr", "fr,en"},          // short French sentence before English
		"INC-9f682075:1": {"en", "fr,en"},          // "L'équipe Payplug Since 08th April"
		"INC-9f682075:3": {"en", "fr,en"},          // "… jours Hello, We are …"
		"INC-aa19fae6:5": {"fr", "fr,en"},          // full stop between languages
		"INC-6465033d:4": {"fr", "fr"},             // French post-mortem
		"INC-d99137d2:2": {"fr", "fr,en"},          // "Cher client, … ------ Dear customer,"
	}
	seen := 0
	for _, u := range loadCorpus(t) {
		w, ok := want[u.ID]
		if !ok {
			continue
		}
		seen++
		title, body := s.SplitTitle(u.Title), s.SplitBody(u.Body)
		if got := langsOf(title); got != w[0] {
			t.Errorf("%s: title languages %q, want %q", u.ID, got, w[0])
		}
		if got := langsOf(body); got != w[1] {
			t.Errorf("%s: body languages %q, want %q", u.ID, got, w[1])
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of %d updates", seen, len(want))
	}
	// Where a marker follows a switch, the English part starts there.
	for _, u := range loadCorpus(t) {
		switch u.ID {
		case "INC-9f682075:3":
			if en := s.SplitBody(u.Body).Texts()["en"]; !strings.HasPrefix(en, "Hello, We are seeing") {
				t.Errorf("%s: English part %q", u.ID, en)
			}
		case "INC-9f682075:1":
			if fr := s.SplitBody(u.Body).Texts()["fr"]; !strings.HasSuffix(fr, "L'équipe Payplug") {
				t.Errorf("%s: French part %q", u.ID, fr)
			}
		}
	}
}
