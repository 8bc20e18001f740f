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

func TestRedactAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, addr, want string }{
		{"smtp echo", "status 550 code 5.1.1: <gone@dupont.example>: Recipient address rejected", "gone@dupont.example",
			"status 550 code 5.1.1: <[address]>: Recipient address rejected"},
		{"other case", "550 5.1.1 <Gone@Dupont.EXAMPLE> unknown; gone@dupont.example again", "gone@dupont.example",
			"550 5.1.1 <[address]> unknown; [address] again"},
		{"twilio echo", "code 21211: The 'To' number +33612345679 is not a valid phone number.", "+33612345679",
			"code 21211: The 'To' number [address] is not a valid phone number."},
		{"absent", "status 451 code 4.3.0: try again later", "ops@dupont.example", "status 451 code 4.3.0: try again later"},
		{"no address", "anything", "", "anything"},
		{"longer than the text", "a@b", "ops@dupont.example", "a@b"},
		{"non-ASCII around", "für ÉTÉ <ops@dupont.example> à", "OPS@dupont.example", "für ÉTÉ <[address]> à"},
		{"invalid UTF-8 before", "\xff\xfe <ops@dupont.example>", "ops@dupont.example", "\xff\xfe <[address]>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RedactAddress(tc.in, tc.addr); got != tc.want {
				t.Errorf("RedactAddress(%q, %q) = %q, want %q", tc.in, tc.addr, got, tc.want)
			}
		})
	}
}
