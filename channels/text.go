package channels

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/secret"
)

// minSecretPart is the shortest beginning of a secret that [Redact] drops
// from the end of a truncated text.
const minSecretPart = 4

// Redact replaces every occurrence of each secret in s with
// [secret.Redacted].
// When truncated is true, s was cut at a read limit, so a secret cut in two
// there is dropped too. Empty secrets are ignored.
func Redact(s string, truncated bool, secrets ...string) string {
	if truncated {
		for _, sec := range secrets {
			for k := min(len(sec)-1, len(s)); k >= minSecretPart; k-- {
				if strings.HasSuffix(s, sec[:k]) {
					s = s[:len(s)-k]
					break
				}
			}
		}
	}
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, secret.Redacted)
		}
	}
	return s
}

// Printable folds runs of spaces and control characters of s into single
// spaces, replaces invalid UTF-8, and cuts the result to at most maxRunes
// runes (plus an ellipsis): a provider's answer made fit for one log line.
func Printable(s string, maxRunes int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(min(len(s), maxRunes*utf8.UTFMax))
	count, space := 0, false
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			count++
		}
		if count >= maxRunes {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}

// maxEscapedID bounds the escaped form of an id (see [EscapeID]).
const maxEscapedID = 200

// EscapeID turns a delivery id into a token safe in file names and in the
// local part of a Message-ID: letters, digits, '-' and '_' stay, other bytes
// are %-escaped (so distinct ids stay distinct and none can climb out of a
// directory); an id whose escaped form exceeds 200 bytes is replaced by
// "sha256-" and its SHA-256 in hex.
func EscapeID(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() > maxEscapedID {
		sum := sha256.Sum256([]byte(id))
		return "sha256-" + hex.EncodeToString(sum[:])
	}
	return b.String()
}

// RedactAddress replaces every occurrence of addr in s, whatever the case
// of its ASCII letters, by "[address]". Providers echo the recipient in
// their refusals ("<ops@dupont.example>: Recipient address rejected", "The
// 'To' number +33612345679 is not a valid phone number"), and the delivery
// log holds no address.
func RedactAddress(s, addr string) string {
	if addr == "" || len(addr) > len(s) {
		return s
	}
	lower, want := LowerASCII(s), LowerASCII(addr)
	var b strings.Builder
	for {
		i := strings.Index(lower, want)
		if i < 0 {
			if b.Len() == 0 {
				return s
			}
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString("[address]")
		s, lower = s[i+len(addr):], lower[i+len(addr):]
	}
}

// LowerASCII lower-cases the ASCII letters of s only, so that byte offsets
// in the result are offsets in s (strings.ToLower may change lengths).
func LowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
