package templates

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The status page's export of an update sometimes loses its line breaks:
// a post-mortem arrives as one line, "# Post Mortem **Référence incident**
// TSR-1572 **Service concerné** Facturation. ... * **13 mars :** ... |
// **Symptômes** | **Actions** | | --- | --- | | a | b |". Rendered as is,
// it is one giant heading. reflowMarkdown puts the lines back where the
// Markdown structure says they were:
//
//   - a table "| h | h | | --- | --- | | a | b |" becomes one line per row;
//   - "# " starts a heading, which ends at the next bold label or list item;
//   - " * " starts a list item;
//   - a bold label ("**Root cause** text": capitalised, no final
//     punctuation, followed by text) starts a paragraph, its value on the
//     next line;
//   - a run of two or more time-stamped entries ("10h50 : ...
//     11h46 : ...") becomes a list.
//
// Text that already has line breaks, or shows none of these structures, is
// returned unchanged.
func reflowMarkdown(s string) string {
	if strings.Contains(s, "\n") || !looksFlattened(s) {
		return s
	}
	var out []string
	for _, seg := range splitTables(s) {
		if seg.table {
			out = append(out, "\n\n"+seg.text+"\n\n")
			continue
		}
		out = append(out, reflowText(seg.text))
	}
	return normalizeBreaks(strings.Join(out, ""))
}

var (
	tableDelimiter = regexp.MustCompile(`\|(?:[ \t]*:?-{3,}:?[ \t]*\|)+`)
	headingMarker  = regexp.MustCompile(`(?:^|\s)(#{1,6})\s+`)
	listMarker     = regexp.MustCompile(`(?:^|[\s\p{Zs}]+)\*[\s\p{Zs}]+`)
	boldRun        = regexp.MustCompile(`\*\*([^*\n]+?)\*\*`)
	timeEntry      = regexp.MustCompile(`(?:^|\s)((?:\d{1,2}/\d{1,2}\s+)?\d{1,2}\s?(?:h|:|\\?\.)\s?\d{2}\s?(?:[aApP][mM])?\s?:\s)`)
)

// looksFlattened reports whether a one-line text carries Markdown block
// structure: a table, a heading, list items or several bold labels.
func looksFlattened(s string) bool {
	if tableDelimiter.MatchString(s) || strings.HasPrefix(s, "# ") || strings.Contains(s, " # ") {
		return true
	}
	if strings.Count(s, " * ") >= 2 || strings.HasPrefix(s, "* ") {
		return true
	}
	labels := 0
	for _, m := range boldRun.FindAllStringSubmatchIndex(s, -1) {
		if isLabel(s, m[0], m[1], m[2], m[3]) {
			labels++
		}
	}
	return labels >= 2
}

type segment struct {
	text  string
	table bool
}

// splitTables cuts s into text and tables; tables come back one row per
// line.
func splitTables(s string) []segment {
	var segs []segment
	for {
		loc := tableDelimiter.FindStringIndex(s)
		if loc == nil {
			break
		}
		cols := strings.Count(s[loc[0]:loc[1]], "|") - 1
		// The header row ends right before the delimiter row.
		hs := strings.TrimRightFunc(s[:loc[0]], unicode.IsSpace)
		start := -1
		if strings.HasSuffix(hs, "|") {
			pipes, i := 0, len(hs)
			for i > 0 && pipes < cols+1 {
				i--
				if hs[i] == '|' && (i == 0 || hs[i-1] != '\\') {
					pipes++
				}
			}
			if pipes == cols+1 {
				start = i
			}
		}
		if start < 0 {
			// Not a table after all: keep the text, continue after it.
			segs = append(segs, segment{text: s[:loc[1]]})
			s = s[loc[1]:]
			continue
		}
		rows := []string{strings.TrimSpace(hs[start:]), strings.TrimSpace(s[loc[0]:loc[1]])}
		pos := loc[1]
		for {
			rest := strings.TrimLeftFunc(s[pos:], unicode.IsSpace)
			if !strings.HasPrefix(rest, "|") {
				break
			}
			off := len(s) - len(rest)
			pipes, end := 0, -1
			for i := off; i < len(s); i++ {
				if s[i] == '|' && (i == 0 || s[i-1] != '\\') {
					pipes++
					if pipes == cols+1 {
						end = i + 1
						break
					}
				}
			}
			if end < 0 {
				break
			}
			rows = append(rows, strings.TrimSpace(s[off:end]))
			pos = end
		}
		if start > 0 {
			segs = append(segs, segment{text: hs[:start]})
		}
		segs = append(segs, segment{text: strings.Join(rows, "\n"), table: true})
		s = s[pos:]
	}
	if strings.TrimSpace(s) != "" {
		segs = append(segs, segment{text: s})
	}
	return segs
}

// reflowText restores headings, list items, bold labels and timelines in a
// one-line text without tables.
func reflowText(s string) string {
	// Headings: "# Title" runs to the next bold label or list item.
	s = headingMarker.ReplaceAllString(s, "\n\n$1 ")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		body := strings.TrimLeft(l, "#")
		cut := len(l)
		if j := strings.Index(body, "**"); j > 1 {
			cut = len(l) - len(body) + j
		}
		if j := strings.Index(body, " * "); j >= 0 && len(l)-len(body)+j < cut {
			cut = len(l) - len(body) + j
		}
		if cut < len(l) {
			lines[i] = l[:cut] + "\n\n" + l[cut:]
		}
	}
	s = strings.Join(lines, "\n")
	// List items.
	s = listMarker.ReplaceAllStringFunc(s, func(m string) string { return "\n* " })
	// Bold labels start a paragraph; their value goes on the next line.
	ms := boldRun.FindAllStringSubmatchIndex(s, -1)
	for k := len(ms) - 1; k >= 0; k-- {
		m := ms[k]
		if !isLabel(s, m[0], m[1], m[2], m[3]) {
			continue
		}
		after := s[m[1]:]
		if strings.HasPrefix(after, " ") {
			after = "\n" + after[1:]
		}
		s = s[:m[0]] + "\n\n" + s[m[0]:m[1]] + after
	}
	// Timelines: two or more time-stamped entries on one line.
	lines = strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "* ") || strings.HasPrefix(l, "#") {
			continue
		}
		entries := timeEntry.FindAllStringSubmatchIndex(l, -1)
		if len(entries) < 2 {
			continue
		}
		var b strings.Builder
		prev := 0
		for _, e := range entries {
			b.WriteString(l[prev:e[2]])
			b.WriteString("\n* ")
			prev = e[2]
		}
		b.WriteString(l[prev:])
		lines[i] = b.String()
	}
	return strings.Join(lines, "\n")
}

// isLabel reports whether the bold run s[start:end] (content s[cs:ce]) is
// a section label: capitalised, without final punctuation, not leading a
// list item, and followed by text or the end.
func isLabel(s string, start, end, cs, ce int) bool {
	label := strings.TrimSpace(s[cs:ce])
	first, _ := utf8.DecodeRuneInString(label)
	last, _ := utf8.DecodeLastRuneInString(label)
	if label == "" || !unicode.IsUpper(first) || strings.ContainsRune(".:;,!?)", last) {
		return false
	}
	before := strings.TrimRight(s[:start], " ")
	if strings.HasSuffix(before, "\n*") || before == "*" || strings.HasSuffix(before, " *") {
		return false
	}
	if lineStart := strings.LastIndexByte(before, '\n'); strings.HasPrefix(before[lineStart+1:], "#") {
		return false
	}
	after := s[end:]
	if after == "" || after[0] == '\n' {
		return true
	}
	if after[0] != ' ' {
		return false
	}
	next, _ := utf8.DecodeRuneInString(strings.TrimLeft(after, " "))
	return !strings.ContainsRune(".,;:!?)", next)
}

var spacesAroundBreak = regexp.MustCompile(`[\t\p{Zs}]*\n[\t\p{Zs}]*`)
var manyBreaks = regexp.MustCompile(`\n{3,}`)

// normalizeBreaks trims spaces around line breaks, keeps at most one blank
// line, and makes sure a list starts after a blank line.
func normalizeBreaks(s string) string {
	s = spacesAroundBreak.ReplaceAllString(s, "\n")
	lines := strings.Split(s, "\n")
	var out []string
	for i, l := range lines {
		if strings.HasPrefix(l, "* ") && i > 0 && lines[i-1] != "" && !strings.HasPrefix(lines[i-1], "* ") {
			out = append(out, "")
		}
		out = append(out, l)
	}
	s = manyBreaks.ReplaceAllString(strings.Join(out, "\n"), "\n\n")
	return strings.TrimSpace(s)
}
