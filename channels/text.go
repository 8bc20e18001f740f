package channels

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// minSecretPart is the shortest beginning of a secret that [Redact] drops
// from the end of a truncated text.
const minSecretPart = 4

// Redact replaces every occurrence of each secret in s with "[redacted]".
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
			s = strings.ReplaceAll(s, sec, "[redacted]")
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
