package gsm7

import (
	"strings"
	"unicode/utf8"
)

// Encoding is the character encoding an SMS is sent in.
type Encoding int

const (
	// GSM7 is the GSM 03.38 default alphabet, 7 bits per character.
	GSM7 Encoding = iota
	// UCS2 is UTF-16, 16 bits per code unit.
	UCS2
)

// String returns "GSM-7" or "UCS-2".
func (e Encoding) String() string {
	if e == UCS2 {
		return "UCS-2"
	}
	return "GSM-7"
}

// Capacities of one SMS, in septets (GSM-7) or UTF-16 code units (UCS-2).
const (
	// GSM7Single is the capacity of a single GSM-7 message.
	GSM7Single = 160
	// GSM7Part is the capacity of each part of a concatenated GSM-7 message.
	GSM7Part = 153
	// UCS2Single is the capacity of a single UCS-2 message.
	UCS2Single = 70
	// UCS2Part is the capacity of each part of a concatenated UCS-2 message.
	UCS2Part = 67
)

// basic is the GSM 03.38 basic character table (one septet each).
const basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// extension is the GSM 03.38 extension table (escape + one septet each).
const extension = "\f^{}\\[~]|€"

var septetTable = func() map[rune]int {
	m := make(map[rune]int, 140)
	for _, r := range basic {
		m[r] = 1
	}
	for _, r := range extension {
		m[r] = 2
	}
	return m
}()

// Septets returns how many septets r takes in GSM-7: 1 for the basic table,
// 2 for the extension table, 0 when r cannot be encoded in GSM-7.
func Septets(r rune) int {
	if r < utf8.RuneSelf {
		// Fast path for ASCII: everything printable is in the basic
		// table except ` (absent) and ^ { } \ [ ~ ] | (extension).
		switch {
		case r == '\n' || r == '\r':
			return 1
		case r == '\f':
			return 2
		case r < ' ' || r == 0x7f || r == '`':
			return 0
		case strings.ContainsRune("^{}\\[~]|", r):
			return 2
		}
		return 1
	}
	return septetTable[r]
}

// Valid reports whether every character of s can be encoded in GSM-7.
func Valid(s string) bool {
	for _, r := range s {
		if Septets(r) == 0 {
			return false
		}
	}
	return true
}

// Count is the size of a message once encoded.
type Count struct {
	// Encoding is the encoding the message needs.
	Encoding Encoding
	// Units is the length in septets (GSM-7) or UTF-16 code units (UCS-2).
	Units int
	// Segments is the number of SMS parts the message is sent as: 0 for
	// an empty message, 1 when it fits a single message.
	Segments int
}

// Measure returns the encoding, length and number of segments of s, exactly
// as a carrier splits it: escape pairs and surrogate pairs are never split
// across parts.
func Measure(s string) Count {
	if s == "" {
		return Count{}
	}
	if Valid(s) {
		return measure(s, GSM7, GSM7Single, GSM7Part, Septets)
	}
	return measure(s, UCS2, UCS2Single, UCS2Part, utf16Units)
}

func utf16Units(r rune) int {
	if r >= 0x10000 && r <= utf8.MaxRune {
		return 2
	}
	return 1
}

func measure(s string, enc Encoding, single, part int, size func(rune) int) Count {
	total := 0
	for _, r := range s {
		total += size(r)
	}
	if total <= single {
		return Count{Encoding: enc, Units: total, Segments: 1}
	}
	// Fill parts one character at a time so that a two-unit character
	// that does not fit at the end of a part moves to the next part.
	segments, used := 1, 0
	for _, r := range s {
		n := size(r)
		if used+n > part {
			segments++
			used = 0
		}
		used += n
	}
	return Count{Encoding: enc, Units: total, Segments: segments}
}

// Fits reports whether s is sent in at most segments parts.
func Fits(s string, segments int) bool { return Measure(s).Segments <= segments }

// translit maps characters outside GSM-7 to GSM-7 text of the same meaning.
var translit = map[rune]string{
	// Apostrophes, quotes and primes.
	'’': "'", '‘': "'", '‚': "'", '‛': "'", '′': "'", 'ʼ': "'", '`': "'", '´': "'",
	'“': `"`, '”': `"`, '„': `"`, '‟': `"`, '«': `"`, '»': `"`, '″': `"`, '‹': "'", '›': "'",
	// Dashes, bullets and dots.
	'‐': "-", '‑': "-", '‒': "-", '–': "-", '—': "-", '―': "-", '−': "-",
	'•': "-", '·': ".", '…': "...",
	// Spaces.
	'\u00a0': " ", '\u202f': " ", '\u2007': " ", '\u2009': " ", '\u200a': " ", '\u2002': " ",
	'\u2003': " ", '\u2004': " ", '\u2005': " ", '\u2006': " ", '\u2008': " ", '\u205f': " ",
	'\u3000': " ", '\t': " ",
	// Zero-width characters carry no meaning in a text message.
	'\u200b': "", '\u200c': "", '\u200d': "", '\u2060': "", '\ufeff': "", '\u00ad': "",
	// Latin letters with accents GSM-7 lacks (French, Italian and
	// neighbours). Italian writes a missing capital È as E'.
	'â': "a", 'á': "a", 'ã': "a", 'ā': "a",
	'ê': "e", 'ë': "e", 'ē': "e", 'ę': "e",
	'î': "i", 'ï': "i", 'í': "i",
	'ô': "o", 'ó': "o", 'õ': "o",
	'û': "u", 'ú': "u",
	'ç': "c", 'ÿ': "y", 'œ': "oe", 'Œ': "OE",
	'Â': "A", 'À': "A", 'Á': "A", 'Ã': "A",
	'Ê': "E", 'Ë': "E", 'È': "E'",
	'Î': "I", 'Ï': "I", 'Ì': "I", 'Í': "I",
	'Ô': "O", 'Ò': "O", 'Ó': "O", 'Õ': "O",
	'Û': "U", 'Ù': "U", 'Ú': "U", 'Ÿ': "Y",
}

// Transliterate replaces the characters of s that GSM-7 lacks with GSM-7
// text of the same meaning, and reports whether the result is entirely
// GSM-7. Characters without such an equivalent are kept, so when ok is
// false the result is still UCS-2 and the caller usually prefers the
// original text.
func Transliterate(s string) (out string, ok bool) {
	if Valid(s) {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	ok = true
	for _, r := range s {
		if Septets(r) > 0 {
			b.WriteRune(r)
			continue
		}
		if t, found := translit[r]; found {
			b.WriteString(t)
			continue
		}
		ok = false
		b.WriteRune(r)
	}
	return b.String(), ok
}
