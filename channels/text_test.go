package channels

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		in        string
		truncated bool
		want      string
	}{
		{"token=s3cr3tvalue ok", false, "token=[redacted] ok"},
		{"echo s3cr3tvalue and s3cr3tvalue", false, "echo [redacted] and [redacted]"},
		{"cut at s3cr3", true, "cut at "},
		{"cut at s3cr3", false, "cut at s3cr3"},
		{"cut at s3c", true, "cut at s3c"}, // shorter than minSecretPart+... kept
	}
	for _, tt := range tests {
		if got := Redact(tt.in, tt.truncated, "s3cr3tvalue", ""); got != tt.want {
			t.Errorf("Redact(%q, %v) = %q, want %q", tt.in, tt.truncated, got, tt.want)
		}
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"  a\r\n\tb  c ", 10, "a b c"},
		{"abcdef", 3, "abc…"},
		{"é\x00è\xff", 10, "é è\uFFFD"},
		{"", 5, ""},
	}
	for _, tt := range tests {
		if got := Printable(tt.in, tt.max); got != tt.want {
			t.Errorf("Printable(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestEscapeID(t *testing.T) {
	long := strings.Repeat("é", 101) // 202 bytes, 606 escaped
	tests := []struct{ in, want string }{
		{"dlv_abc-DEF_9", "dlv_abc-DEF_9"},
		{"../x y", "%2E%2E%2Fx%20y"},
		{long, "sha256-"},
	}
	for _, tt := range tests {
		got := EscapeID(tt.in)
		hashed := tt.want == "sha256-"
		if (!hashed && got != tt.want) || (hashed && (!strings.HasPrefix(got, tt.want) || len(got) != 7+64)) {
			t.Errorf("EscapeID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
