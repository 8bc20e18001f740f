package secret

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
)

// Redacted is what a secret prints as.
const Redacted = "[redacted]"

// Value is a secret string. Its fmt and slog forms are redacted; use
// [Value.Reveal] where the real value is needed.
type Value string

// Reveal returns the secret itself.
func (v Value) Reveal() string { return string(v) }

// Matches reports whether given is v, in the same time whatever given
// is, its length included: their SHA-256 digests are compared in constant
// time (tokens presented to Herald are checked with it).
func (v Value) Matches(given string) bool {
	want, got := sha256.Sum256([]byte(v)), sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1
}

// IsZero reports whether the secret is empty.
func (v Value) IsZero() bool { return v == "" }

// String returns "[redacted]", or "" for an empty secret.
func (v Value) String() string {
	if v == "" {
		return ""
	}
	return Redacted
}

// GoString returns the same as String, so %#v does not reveal the value.
func (v Value) GoString() string { return `secret.Value("` + v.String() + `")` }

// Format redacts the value for every fmt verb.
func (v Value) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, v.GoString())
		return
	}
	fmt.Fprint(f, v.String())
}

// LogValue redacts the value in slog records.
func (v Value) LogValue() slog.Value { return slog.StringValue(v.String()) }

// Masked returns a form safe to show to the secret's owner: its prefix up
// to the first '_' (e.g. "whsec_"), an ellipsis and its last four
// characters. Short secrets are fully masked.
func (v Value) Masked() string {
	s := string(v)
	if s == "" {
		return ""
	}
	prefix := ""
	for i := 0; i < len(s) && i < 8; i++ {
		if s[i] == '_' {
			prefix = s[:i+1]
			break
		}
	}
	if len(s)-len(prefix) < 16 {
		return prefix + "…"
	}
	return prefix + "…" + s[len(s)-4:]
}

// MarshalJSON encodes "[redacted]" (see the package documentation).
func (v Value) MarshalJSON() ([]byte, error) { return json.Marshal(v.String()) }

// UnmarshalJSON decodes a JSON string.
func (v *Value) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*v = Value(s)
	return nil
}
