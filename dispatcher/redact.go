package dispatcher

import "strings"

// redactAddress replaces every occurrence of addr in s, whatever the case
// of its ASCII letters, by "[address]". Providers echo the recipient in
// their refusals ("<ops@dupont.example>: Recipient address rejected", "The
// 'To' number +33612345679 is not a valid phone number"), and the delivery
// log holds no address.
func redactAddress(s, addr string) string {
	if addr == "" || len(addr) > len(s) {
		return s
	}
	lower, want := asciiLower(s), asciiLower(addr)
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

// asciiLower lower-cases the ASCII letters of s only, so that byte offsets
// in the result are offsets in s.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
