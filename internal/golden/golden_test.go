package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps the errors reported to it.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, format)
}

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.txt")
	if err := os.WriteFile(path, []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		got  string
		want string // part of the error; empty: none
	}{
		{"a\nb\nc\n", ""},
		{"a\nB\nc\n", "%s:%d differs"},
		{"a\nb\nc\n\n", "differs in length"},
	} {
		r := &recorder{TB: t}
		Check(r, path, []byte(tc.got))
		switch {
		case tc.want == "" && len(r.errs) != 0:
			t.Errorf("%q: errors %v, want none", tc.got, r.errs)
		case tc.want != "" && (len(r.errs) != 1 || !strings.Contains(r.errs[0], tc.want)):
			t.Errorf("%q: errors %v, want one with %q", tc.got, r.errs, tc.want)
		}
	}
}
