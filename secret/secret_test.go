package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValueNeverPrints(t *testing.T) {
	t.Parallel()
	const raw = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	v := Value(raw)
	type holder struct{ Token Value }
	for _, s := range []string{
		fmt.Sprint(v), fmt.Sprintf("%s %v %q %x %#v %+v", v, v, v, v, v, v),
		fmt.Sprintf("%v %+v %#v", holder{v}, holder{v}, holder{v}),
	} {
		if strings.Contains(s, raw) || strings.Contains(s, "MfKQ") {
			t.Errorf("secret leaked through fmt: %s", s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", v, "holder", holder{v})
	if strings.Contains(buf.String(), "MfKQ") {
		t.Errorf("secret leaked through slog: %s", buf.String())
	}
}

func TestValueJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(struct{ S Value }{Value("whsec_abc")})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"S":"[redacted]"}` {
		t.Fatalf("encoded %s, want the value redacted", b)
	}
	var back struct{ S Value }
	if err := json.Unmarshal([]byte(`{"S":"whsec_abc"}`), &back); err != nil {
		t.Fatal(err)
	}
	if back.S.Reveal() != "whsec_abc" {
		t.Fatalf("decoded %q", back.S.Reveal())
	}
}

func TestMasked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_…LaSw"},
		{"whsec_short", "whsec_…"},
		{"xoxb-1234", "…"},
		{"abcdefghijklmnopqrstuvwxyz", "…wxyz"},
	} {
		if got := Value(tc.in).Masked(); got != tc.want {
			t.Errorf("Masked(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestMatches: a token matches itself only; a prefix, a longer token or
// the empty string does not.
func TestMatches(t *testing.T) {
	t.Parallel()
	v := Value("s3cret-token")
	for _, tc := range []struct {
		given string
		want  bool
	}{
		{"s3cret-token", true},
		{"s3cret", false},
		{"s3cret-token-and-more", false},
		{"", false},
		{"S3cret-token", false},
	} {
		if got := v.Matches(tc.given); got != tc.want {
			t.Errorf("Matches(%q) = %v, want %v", tc.given, got, tc.want)
		}
	}
	if Value("").Matches("x") {
		t.Error("an empty secret matched")
	}
}
