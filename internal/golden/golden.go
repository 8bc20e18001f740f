// Package golden compares test output with golden files: one -update flag
// rewrites them, and a difference is reported at its first differing line.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// Check compares got with the golden file at path, or writes it there when
// the tests run with -update (creating its directory).
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gotLines, wantLines := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := range min(len(gotLines), len(wantLines)) {
		if !bytes.Equal(gotLines[i], wantLines[i]) {
			t.Errorf("%s:%d differs (go test -update rewrites it after review)\n got: %s\nwant: %s\nwhole output:\n%s", path, i+1, gotLines[i], wantLines[i], got)
			return
		}
	}
	t.Errorf("%s differs in length: %d lines, want %d (go test -update rewrites it after review)\nwhole output:\n%s", path, len(gotLines), len(wantLines), got)
}
