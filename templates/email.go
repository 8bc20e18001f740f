package templates

import (
	"strings"
	"time"
	"unicode/utf8"
)

// maxSubjectRunes bounds email subjects; longer ones are cut on a word
// boundary.
const maxSubjectRunes = 180

// renderEmail renders the subject, text part and HTML part of an update.
func (r *Renderer) renderEmail(p *prepared, lp langPair, loc *time.Location, shape int, fallback bool) (*Rendered, error) {
	v := r.newView(p, lp, loc, fallback, true)
	v.Recipient = placeholderRecipient(shape)
	subject, err := r.tmpl.execText("email.subject.tmpl", v)
	if err != nil {
		return nil, err
	}
	v.Subject = subjectLine(subject)
	text, err := r.tmpl.execText("email.txt.tmpl", v)
	if err != nil {
		return nil, err
	}
	htmlPart, err := r.tmpl.execHTML("email.html.tmpl", v)
	if err != nil {
		return nil, err
	}
	out := &Rendered{Locale: lp.text, Frame: lp.frame, Subject: v.Subject, Text: tidyText(text), HTML: htmlPart}
	cal, err := r.calendar(p, v)
	if err != nil {
		return nil, err
	}
	if cal != nil {
		out.Attachments = []Attachment{*cal}
	}
	return out, nil
}

// subjectLine returns s on one line, without control characters and
// without MIME encoded-words, cut on a word boundary to maxSubjectRunes.
func subjectLine(s string) string {
	s = neutralizeEncodedWords(cleanLine(s))
	if utf8.RuneCountInString(s) <= maxSubjectRunes {
		return s
	}
	return cutWords(s[:byteOffset(s, maxSubjectRunes-2)], 0) + " …"
}

// tidyText trims trailing spaces, keeps at most one blank line in a row,
// and ends the text with one line break.
func tidyText(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	out := lines[:0]
	blank := 0
	for _, l := range lines {
		l = strings.TrimRight(l, " \t")
		if l == "" {
			blank++
			if blank > 1 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n")) + "\n"
}

// neutralizeEncodedWords breaks the opening "=?" of anything shaped like a
// MIME encoded-word (RFC 2047: =?charset?encoding?text?=): a title written
// raw into an ASCII Subject would otherwise be decoded by mail readers,
// showing text the update never had.
func neutralizeEncodedWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	return strings.ReplaceAll(s, "=?", "= ?")
}
