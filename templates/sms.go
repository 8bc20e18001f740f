package templates

import (
	"errors"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/heraldhq/herald/templates/gsm7"
)

// renderSMS renders an update as an SMS that fits the segment budget.
func (r *Renderer) renderSMS(p *prepared, lp langPair, loc *time.Location) (*Rendered, error) {
	v := r.newView(p, lp, loc, false, false)
	v.Body = p.texts[lp.text].doc.SMSText()
	subject := subjectLine("[" + v.StatusLabel + "] " + v.Title)
	text, count, err := r.fitSMS(v, "sms.txt.tmpl", &v.Title, &v.Body, &v.URL)
	if err != nil {
		return nil, err
	}
	return &Rendered{Locale: lp.text, Frame: lp.frame, Subject: subject, Text: text, Segments: count.Segments, Encoding: count.Encoding.String()}, nil
}

// errSMSBudget is returned when not even the fixed part of an SMS
// template fits the budget.
var errSMSBudget = errors.New("sms template does not fit the segment budget even with an empty title and body")

// fitSMS renders the SMS template and fits it into the segment budget:
// first it transliterates to GSM-7 when that keeps the meaning; then it
// shortens *body on a word boundary (ending with "…"), then *title; the
// link *link is never cut, and only dropped when it cannot fit at all.
func (r *Renderer) fitSMS(data any, name string, title, body, link *string) (string, gsm7.Count, error) {
	budget := r.cfg.SMSSegments
	try := func() (string, gsm7.Count, error) {
		s, err := r.tmpl.execText(name, data)
		if err != nil {
			return "", gsm7.Count{}, err
		}
		s = smsText(s)
		if t, ok := gsm7.Transliterate(s); ok {
			s = t
		}
		return s, gsm7.Measure(s), nil
	}
	s, c, err := try()
	if err != nil || c.Segments <= budget {
		return s, c, err
	}
	for _, field := range []*string{body, title} {
		full := *field
		cuts := wordCuts(full)
		// The longest prefix that fits; more text never takes fewer
		// segments, so a binary search finds it.
		i := sort.Search(len(cuts), func(i int) bool {
			*field = shortened(full, cuts[i])
			_, c, err := try()
			return err != nil || c.Segments > budget
		})
		if i > 0 {
			*field = shortened(full, cuts[i-1])
			return try()
		}
		*field = ""
		if s, c, err = try(); err != nil || c.Segments <= budget {
			return s, c, err
		}
	}
	if *link != "" {
		r.cfg.Logger.Warn("sms: link dropped, it does not fit the segment budget", "segments", budget, "length", len(*link))
		*link = ""
		if s, c, err = try(); err != nil || c.Segments <= budget {
			return s, c, err
		}
	}
	return "", gsm7.Count{}, errSMSBudget
}

// wordCuts returns the byte offsets where s may be cut: the end of every
// word, in increasing order (the full length last).
func wordCuts(s string) []int {
	var cuts []int
	prevSpace := true
	for i, r := range s {
		space := unicode.IsSpace(r)
		if space && !prevSpace {
			cuts = append(cuts, i)
		}
		prevSpace = space
	}
	if !prevSpace {
		cuts = append(cuts, len(s))
	}
	return cuts
}

// shortened returns s cut at byte offset n, with an ellipsis when it cut.
func shortened(s string, n int) string {
	if n >= len(s) {
		return s
	}
	return strings.TrimRight(s[:n], " \t\n,;:-–—(") + "…"
}

// smsText tidies a rendered SMS: lines trimmed, no blank lines, no
// trailing line break.
func smsText(s string) string {
	lines := strings.Split(s, "\n")
	out := lines[:0]
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// fitPlain fits a plain text into the budget: transliterated when that
// keeps it GSM-7, else shortened on a word boundary.
func fitPlain(s string, budget int) (string, gsm7.Count) {
	measure := func(t string) (string, gsm7.Count) {
		if tr, ok := gsm7.Transliterate(t); ok {
			t = tr
		}
		return t, gsm7.Measure(t)
	}
	out, c := measure(s)
	if c.Segments <= budget {
		return out, c
	}
	cuts := wordCuts(s)
	i := sort.Search(len(cuts), func(i int) bool {
		_, c := measure(shortened(s, cuts[i]))
		return c.Segments > budget
	})
	if i == 0 {
		return measure(shortened(s, byteOffset(s, 60)))
	}
	return measure(shortened(s, cuts[i-1]))
}
