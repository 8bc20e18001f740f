package email

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/channels"
)

// maxReplyText bounds the server text Herald keeps from one SMTP reply: a
// reply is summarised in the delivery log, never copied whole.
const maxReplyText = 256

// enhancedCode is an RFC 3463 enhanced mail system status code:
// class.subject.detail, e.g. 5.1.1 (bad destination mailbox address). The
// zero value means the reply carried none.
type enhancedCode struct {
	// Class is 2 (success), 4 (persistent transient failure) or 5
	// (permanent failure).
	Class int
	// Subject is the category: 1 addressing, 2 mailbox, 3 mail system,
	// 4 network and routing, 5 mail delivery protocol, 6 message content,
	// 7 security or policy.
	Subject int
	// Detail is the detail within the subject.
	Detail int
}

// IsZero reports whether the code is absent.
func (e enhancedCode) IsZero() bool { return e.Class == 0 }

// String returns "class.subject.detail", or "" for the zero code.
func (e enhancedCode) String() string {
	if e.IsZero() {
		return ""
	}
	return strconv.Itoa(e.Class) + "." + strconv.Itoa(e.Subject) + "." + strconv.Itoa(e.Detail)
}

// reply is an SMTP server reply (RFC 5321 section 4.2): its three-digit
// code, its enhanced status code when it has one, and its text, summarised
// on one line.
type reply struct {
	// Code is the reply code (250, 451, 550…).
	Code int
	// Enhanced is the RFC 3463 code leading the text, when the server
	// sent one whose class matches Code's first digit.
	Enhanced enhancedCode
	// Text is the reply's text without codes: its lines joined by
	// spaces, control characters replaced, at most 256 bytes.
	Text string
}

// newReply builds the reply with code and text, text being the reply's
// lines without their codes, separated by LF (as net/textproto returns
// them).
func newReply(code int, text string) reply {
	r := reply{Code: code}
	lines := strings.Split(text, "\n")
	if ec, rest, ok := cutEnhanced(lines[0]); ok && ec.Class == code/100 {
		r.Enhanced = ec
		lines[0] = rest
		for i := 1; i < len(lines); i++ {
			if ec2, rest2, ok := cutEnhanced(lines[i]); ok && ec2 == ec {
				lines[i] = rest2
			}
		}
	}
	r.Text = summarize(strings.Join(lines, " "), maxReplyText)
	return r
}

// cutEnhanced reads an enhanced status code at the start of s
// ("5.1.1 User unknown"): class 2, 4 or 5, then subject and detail of one
// to three digits each, then a space or the end of s. It returns the code
// and the text after it.
func cutEnhanced(s string) (enhancedCode, string, bool) {
	if len(s) < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.' {
		return enhancedCode{}, s, false
	}
	subject, n := leadingNumber(s[2:])
	if n == 0 || 2+n >= len(s) || s[2+n] != '.' {
		return enhancedCode{}, s, false
	}
	i := 3 + n
	detail, m := leadingNumber(s[i:])
	if m == 0 {
		return enhancedCode{}, s, false
	}
	i += m
	if i < len(s) && s[i] != ' ' {
		return enhancedCode{}, s, false
	}
	return enhancedCode{Class: int(s[0] - '0'), Subject: subject, Detail: detail}, strings.TrimLeft(s[i:], " "), true
}

// leadingNumber reads one to three digits at the start of s, without
// leading zero. It returns the number and how many bytes it took, 0 when s
// does not start with such a number followed by a non-digit or the end.
func leadingNumber(s string) (int, int) {
	n, v := 0, 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		if n == 3 {
			return 0, 0
		}
		v = v*10 + int(s[n]-'0')
		n++
	}
	if n > 1 && s[0] == '0' { // "01": not a number RFC 3463 writes
		return 0, 0
	}
	return v, n
}

// summarize makes s one printable line of at most limit bytes: control
// and invalid bytes become spaces, runs of spaces collapse, the result is
// trimmed and cut at a rune boundary with an ellipsis.
func summarize(s string, limit int) string {
	var b strings.Builder
	b.Grow(min(len(s), limit+8))
	space := false
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.IsSpace(r) ||
			unicode.Is(unicode.Cf, r) { // bidi overrides and the like
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > limit {
			return strings.TrimRight(b.String(), " ") + "…"
		}
		b.WriteRune(r)
	}
	return b.String()
}

// queueID returns the id a server gave an accepted message in the text of
// its final 250 reply (without the codes), or "" when it gave none that
// Herald recognises. It knows the forms of the common servers:
//
//   - "Ok: queued as 4BB8B3F5C2" (Postfix, Mailpit);
//   - "OK id=1tXw2v-0004Zq-Ab" (Exim);
//   - "x8FGi3xX012345 Message accepted for delivery" (Sendmail);
//   - "<…> [InternalId=1234, Hostname=…] Queued mail for delivery"
//     (Microsoft Exchange);
//   - "OK 1715000000 a640c23a62f3a-a9a3c5f8a5csi1.123 - gsmtp" (Gmail);
//   - "Ok 0100018f5b6e7c1d-…-000000" (Amazon SES).
//
// The id is at most 128 bytes of letters, digits and . _ - + = / @.
func queueID(text string) string {
	text = strings.TrimSpace(text)
	lower := channels.LowerASCII(text) // same length as text: indexes carry over
	for _, marker := range []string{"queued as ", "id=", "internalid="} {
		if i := strings.Index(lower, marker); i >= 0 && (marker != "id=" || i == 0 || !isIDByte(lower[i-1])) {
			return idToken(text[i+len(marker):])
		}
	}
	fields := strings.Fields(text)
	switch n := len(fields); {
	case n >= 3 && strings.EqualFold(fields[n-1], "gsmtp") && fields[n-2] == "-":
		return wholeID(fields[n-3])
	case n >= 3 && strings.EqualFold(fields[1], "message") && strings.EqualFold(fields[2], "accepted"):
		return wholeID(fields[0])
	case n == 2 && strings.EqualFold(fields[0], "ok") && len(fields[1]) >= 12:
		return wholeID(fields[1])
	}
	return ""
}

// wholeID returns field if all of it is a queue id holding a digit (ids
// do; words do not), "" otherwise.
func wholeID(field string) string {
	if idToken(field) != field || !strings.ContainsAny(field, "0123456789") {
		return ""
	}
	return field
}

// idToken returns the queue id at the start of s: its leading run of id
// bytes (after an optional '<'), or "" if that run is empty or longer than
// 128 bytes.
func idToken(s string) string {
	s = strings.TrimPrefix(s, "<")
	n := 0
	for n < len(s) && isIDByte(s[n]) {
		n++
	}
	id := strings.TrimRight(s[:n], ".")
	if id == "" || len(id) > 128 {
		return ""
	}
	return id
}

func isIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-' || c == '+' || c == '=' || c == '/' || c == '@'
}
