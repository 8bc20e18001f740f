// Package gsm7 counts SMS segments exactly and transliterates text into the
// GSM 03.38 default alphabet ("GSM-7") when that keeps its meaning.
//
// An SMS is sent in one of two encodings:
//
//   - GSM-7, when every character is in the GSM 03.38 basic table or its
//     extension table. A single message holds 160 septets; a message split
//     into parts holds 153 septets per part (the rest carries the
//     concatenation header). Extension characters (form feed and
//     ^ { } \ [ ~ ] | €) take two septets each, and an escape pair is never
//     split across parts.
//   - UCS-2 otherwise: 70 UTF-16 code units in a single message, 67 per part
//     when split; a surrogate pair (an emoji, say) is never split across
//     parts.
//
// French and Italian text often holds characters outside GSM-7 (â ê î ô û ë
// ï œ, lower-case ç, upper-case È À Ì Ò Ù, typographic quotes and
// apostrophes, the ellipsis, non-breaking spaces), and a single one of them
// turns the whole message into UCS-2, more than halving its capacity.
// [Transliterate] replaces them with GSM-7 equivalents of the same meaning
// (’ → ', « » → ", … → ..., ê → e, œ → oe, È → E', NBSP → space) and reports
// whether the result is pure GSM-7; characters with no such equivalent
// (emoji, other scripts) are left alone.
//
//	c := gsm7.Measure("Résolu : les paiements fonctionnent.")
//	// c.Encoding == gsm7.GSM7, c.Units == 36, c.Segments == 1
package gsm7
