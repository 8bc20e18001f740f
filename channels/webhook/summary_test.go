package webhook

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func mustTarget(t testing.TB, raw string) *target {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return newTarget(u)
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	tg := mustTarget(t, "https://hooks.example.com/hooks/T0123/abcdefghijklmnop?token=s3cr3tv4lue&x=1")
	for _, tc := range []struct {
		name      string
		body      string
		truncated bool
		want      string
	}{
		{"plain", "bad payload", false, "bad payload"},
		{"whitespace collapsed", "  a\r\n\tb  \n", false, "a b"},
		{"control characters dropped", "a\x00b\x1b[31mc\x7f", false, "a b [31mc"},
		{"invalid UTF-8", "caf\xe9 ok", false, "caf\uFFFD ok"},
		{"echoed query", "no route /hooks/T0123/abcdefghijklmnop?token=s3cr3tv4lue&x=1", false, "no route /hooks/T0123/[redacted]?[redacted]"},
		{"echoed value", `{"error":"bad token s3cr3tv4lue"}`, false, `{"error":"bad token [redacted]"}`},
		{"echoed signing secret", "key whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw or MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false, "key [redacted] or [redacted]"},
		{"secret cut at the read limit", "bad token s3cr3", true, "bad token"},
		{"short words stay", "hooks T0123 x=1", false, "hooks T0123 x=1"},
		{"long", strings.Repeat("é", 500), false, strings.Repeat("é", summaryRunes) + "…"},
		{"empty", "", false, ""},
	} {
		got := summarize([]byte(tc.body), tc.truncated, tg, testSecret)
		if got != tc.want {
			t.Errorf("%s: summarize = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// FuzzSummarize checks that whatever a receiver answers, the summary Herald
// keeps is short, printable, one line, and free of the URL's secrets.
func FuzzSummarize(f *testing.F) {
	f.Add([]byte("no route /hooks/abcdefghijklmnop?token=s3cr3tv4lue"), false)
	f.Add([]byte("\x00\x1b[2J\r\n"), true)
	f.Add([]byte("token=s3cr3"), true)
	f.Add([]byte(strings.Repeat("ab ", 300)), false)
	tg := mustTarget(f, "https://hooks.example.com/hooks/abcdefghijklmnop?token=s3cr3tv4lue")
	f.Fuzz(func(t *testing.T, body []byte, truncated bool) {
		got := summarize(body, truncated, tg, testSecret)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 %q", got)
		}
		if n := utf8.RuneCountInString(got); n > summaryRunes+1 {
			t.Fatalf("%d runes", n)
		}
		if strings.IndexFunc(got, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) >= 0 {
			t.Fatalf("unprintable character in %q", got)
		}
		if strings.HasPrefix(got, " ") || strings.HasSuffix(got, " ") || strings.Contains(got, "  ") {
			t.Fatalf("uncollapsed spaces in %q", got)
		}
		for _, s := range []string{"s3cr3tv4lue", "abcdefghijklmnop", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
			if strings.Contains(got, s) {
				t.Fatalf("summary %q holds %q", got, s)
			}
		}
	})
}
