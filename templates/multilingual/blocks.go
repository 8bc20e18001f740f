package multilingual

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// unit is a sentence of a text without markers, with its language as
// identified on its own.
type unit struct {
	start, end int // byte range in the text, trimmed
	lang       string
	conf       float64
	words      int
	letters    int
	greeting   bool
}

// Identification thresholds for text without markers.
const (
	// anchorWords is the number of words from which a sentence
	// identified with enough confidence decides its language alone.
	anchorWords = 3
	// switchLetters is the number of letters, in sentences that decide
	// their language alone, a run needs to stand as a language of its
	// own; a shorter run (a quoted term, a signature) joins its
	// neighbours.
	switchLetters = 20
	// promoteWords and promoteFactor: see promote.
	promoteWords  = 5
	promoteFactor = 0.6
)

// greetingRe finds the salutations that open a message in one language
// ("Bonjour,", "Hello,", "Buongiorno,", "Dear customer,"): a language
// often starts there without a full stop before it.
var greetingRe = regexp.MustCompile(`\b(?:Bonjour|Bonsoir|Hello|Hi|Dear|Cher|Chère|Chers|Chères|Buongiorno|Buonasera|Salve|Gentile|Gentili|Caro|Cari)\b[^.,;:!?\n]{0,30},`)

// cutUnits cuts text into sentences: after a full stop, question or
// exclamation mark followed by a capital, a digit or Markdown, at line
// breaks, and before greetings.
func cutUnits(text string) []unit {
	var cuts []int
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == '\n':
			cuts = append(cuts, i+n)
		case r == '.' || r == '!' || r == '?' || r == '…':
			j := i + n
			for j < len(text) && strings.ContainsRune("\"'»”)*_", rune(text[j])) {
				j++
			}
			k := j
			for k < len(text) && (text[k] == ' ' || text[k] == '\t') {
				k++
			}
			if k > j && k < len(text) {
				next, _ := utf8.DecodeRuneInString(text[k:])
				if unicode.IsUpper(next) || unicode.IsDigit(next) || strings.ContainsRune("*#|«\"“([-_", next) {
					cuts = append(cuts, k)
				}
			}
		}
		i += n
	}
	for _, m := range greetingRe.FindAllStringIndex(text, -1) {
		cuts = append(cuts, m[0])
	}
	slices.Sort(cuts)
	var units []unit
	prev := 0
	add := func(a, b int) {
		seg := text[a:b]
		lead := len(seg) - len(strings.TrimLeftFunc(seg, unicode.IsSpace))
		seg = strings.TrimSpace(seg)
		if seg == "" {
			return
		}
		u := unit{start: a + lead, end: a + lead + len(seg), words: words(seg), letters: letters(seg)}
		if m := greetingRe.FindStringIndex(seg); m != nil && m[0] == 0 {
			u.greeting = true
		}
		units = append(units, u)
	}
	for _, c := range cuts {
		if c <= prev || c >= len(text) {
			continue
		}
		add(prev, c)
		prev = c
	}
	add(prev, len(text))
	return units
}

// identifyBlocks cuts a text that no marker announces into runs of one
// language. It returns no part when the text's language cannot be told.
// A run identified as a language that a marker announces elsewhere in
// the body (marked) joins a neighbouring run: where the status page marks
// languages, it marks each of them.
func (s *Splitter) identifyBlocks(text string, marked map[string]bool) []Part {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	units := cutUnits(text)
	for i := range units {
		u := &units[i]
		u.lang, u.conf = s.id.identify(text[u.start:u.end])
	}
	s.promote(units)
	anchors := 0
	for _, u := range units {
		if s.anchor(u) {
			anchors++
		}
	}
	if anchors == 0 {
		// No sentence tells its language alone: the whole text may.
		lang, conf := s.id.identify(text)
		if lang == "" || conf < s.cfg.MinConfidence {
			return nil
		}
		return []Part{{Lang: lang, Text: strings.TrimSpace(text), Identified: true}}
	}
	s.assign(text, units)
	s.absorbShortRuns(units)
	s.refineSwitches(text, &units)
	yieldMarked(units, marked)
	return runsToParts(text, units)
}

// promote lets a sentence of at least promoteWords words that
// identification finds likely, though not sure, to be in another language
// than the sentences around it decide its language alone
// ("L'incident est clos depuis 14h18." before English): short sentences
// never reach a high confidence.
func (s *Splitter) promote(units []unit) {
	for i := range units {
		u := &units[i]
		if s.anchor(*u) || u.lang == "" || u.words < promoteWords || u.conf < s.cfg.MinConfidence*promoteFactor {
			continue
		}
		for _, v := range units {
			if s.anchor(v) && v.lang != u.lang {
				u.conf = s.cfg.MinConfidence
				break
			}
		}
	}
}

// anchor reports whether a sentence decides its language alone.
func (s *Splitter) anchor(u unit) bool {
	return u.lang != "" && u.conf >= s.cfg.MinConfidence && u.words >= anchorWords
}

// assign gives every sentence that does not decide its language alone
// the language of its context: between two languages, the one of the
// two it reads more like; a greeting goes with what follows it; else the
// language before it (or after it at the start).
func (s *Splitter) assign(text string, units []unit) {
	decided := make([]bool, len(units))
	for i, u := range units {
		decided[i] = s.anchor(u)
	}
	for i := range units {
		if decided[i] {
			continue
		}
		prev, next := "", ""
		for j := i - 1; j >= 0; j-- {
			if decided[j] {
				prev = units[j].lang
				break
			}
		}
		for j := i + 1; j < len(units); j++ {
			if decided[j] {
				next = units[j].lang
				break
			}
		}
		u := &units[i]
		switch {
		case prev != "" && next != "" && prev != next:
			if lang, conf := s.id.identifyPair(text[u.start:u.end], prev, next); lang != "" && conf > 0 {
				u.lang = lang
			} else if u.greeting {
				u.lang = next
			} else {
				u.lang = prev
			}
		case u.greeting && next != "":
			u.lang = next
		case prev != "":
			u.lang = prev
		default:
			u.lang = next
		}
	}
}

// absorbShortRuns merges runs too short to be a language of their own
// into the run before them (or after them at the start).
func (s *Splitter) absorbShortRuns(units []unit) {
	for {
		runs := runsOf(units)
		if len(runs) < 2 {
			return
		}
		weakest, weight := -1, 0
		for ri, r := range runs {
			w := 0
			for _, u := range units[r[0]:r[1]] {
				if s.anchor(u) && u.lang == units[r[0]].lang {
					w += u.letters
				}
			}
			if w < switchLetters && (weakest < 0 || w < weight) {
				weakest, weight = ri, w
			}
		}
		if weakest < 0 {
			return
		}
		r := runs[weakest]
		lang := ""
		if weakest > 0 {
			lang = units[runs[weakest-1][0]].lang
		} else {
			lang = units[runs[1][0]].lang
		}
		for i := r[0]; i < r[1]; i++ {
			units[i].lang = lang
		}
	}
}

// yieldMarked gives the runs in a language that markers announce
// elsewhere the language of a neighbouring run that none announces.
func yieldMarked(units []unit, marked map[string]bool) {
	runs := runsOf(units)
	if len(runs) < 2 || len(marked) == 0 {
		return
	}
	for ri, r := range runs {
		if !marked[units[r[0]].lang] {
			continue
		}
		lang := ""
		if ri > 0 && !marked[units[runs[ri-1][0]].lang] {
			lang = units[runs[ri-1][0]].lang
		} else if ri+1 < len(runs) && !marked[units[runs[ri+1][0]].lang] {
			lang = units[runs[ri+1][0]].lang
		}
		if lang == "" {
			continue
		}
		for i := r[0]; i < r[1]; i++ {
			units[i].lang = lang
		}
	}
}

// runsOf returns the [start, end) unit ranges of consecutive sentences of
// one language.
func runsOf(units []unit) [][2]int {
	var runs [][2]int
	for i := 0; i < len(units); {
		j := i + 1
		for j < len(units) && units[j].lang == units[i].lang {
			j++
		}
		runs = append(runs, [2]int{i, j})
		i = j
	}
	return runs
}

// refineSwitches looks, at each change of language, for a switch inside
// the sentences on either side ("… L'équipe Payplug Since 08th April,
// some …" has no full stop between the languages): it cuts the sentence
// before a capitalised word where the text before reads as the first
// language and the text after as the second.
func (s *Splitter) refineSwitches(text string, units *[]unit) {
	for i := 1; i < len(*units); i++ {
		us := *units
		a, b := us[i-1], us[i]
		if a.lang == b.lang {
			continue
		}
		// The switch may hide at the start of b or at the end of a.
		// A greeting opens its language: the switch is before it.
		if cut, ok := s.bestCut(text, b, a.lang, b.lang); ok && !b.greeting {
			head := unit{start: b.start, end: cut.end, lang: a.lang}
			tail := unit{start: cut.start, end: b.end, lang: b.lang}
			*units = append(us[:i], append([]unit{head, tail}, us[i+1:]...)...)
			i++
			continue
		}
		if cut, ok := s.bestCut(text, a, a.lang, b.lang); ok {
			head := unit{start: a.start, end: cut.end, lang: a.lang}
			tail := unit{start: cut.start, end: a.end, lang: b.lang}
			*units = append(us[:i-1], append([]unit{head, tail}, us[i:]...)...)
			i++
		}
	}
}

// bestCut finds where, inside sentence u, language from gives way to
// language to. The result's end is where the head ends and its start is
// where the tail starts.
func (s *Splitter) bestCut(text string, u unit, from, to string) (unit, bool) {
	seg := text[u.start:u.end]
	best, bestScore := unit{}, 0.0
	found := false
	for i, r := range seg {
		if i == 0 || !unicode.IsUpper(r) {
			continue
		}
		prev, _ := utf8.DecodeLastRuneInString(seg[:i])
		if !unicode.IsSpace(prev) {
			continue
		}
		head, tail := strings.TrimSpace(cutWindow(seg[:i], true)), cutWindow(seg[i:], false)
		if words(tail) < anchorWords || letters(head) == 0 {
			continue
		}
		hl, hc := s.id.identifyPair(head, from, to)
		tl, tc := s.id.identifyPair(tail, from, to)
		if hl != from || tl != to || tc < s.cfg.MinConfidence {
			continue
		}
		score := hc*float64(letters(head)) + tc*float64(letters(tail))
		if !found || score > bestScore {
			found, bestScore = true, score
			best = unit{start: u.start + i, end: u.start + len(strings.TrimRight(seg[:i], " \t"))}
		}
	}
	return best, found
}

// cutWindow bounds the text each side of a candidate cut is identified
// on: the last (head) or first cutWindowBytes of s, at a word boundary.
// Identifying whole sides would make the search quadratic in the
// sentence's length; the language next to the cut is what decides it.
func cutWindow(s string, head bool) string {
	if len(s) <= cutWindowBytes {
		return s
	}
	if head {
		w := s[len(s)-cutWindowBytes:]
		if k := strings.IndexAny(w, " \t\n"); k >= 0 {
			w = w[k+1:]
		}
		return w
	}
	w := s[:cutWindowBytes]
	if k := strings.LastIndexAny(w, " \t\n"); k >= 0 {
		w = w[:k]
	}
	return w
}

// cutWindowBytes is the size of the text each side of a candidate cut is
// identified on (a few sentences' worth).
const cutWindowBytes = 600

// runsToParts turns runs of sentences into parts.
func runsToParts(text string, units []unit) []Part {
	var parts []Part
	for _, r := range runsOf(units) {
		start, end := units[r[0]].start, units[r[1]-1].end
		parts = append(parts, Part{Lang: units[r[0]].lang, Text: strings.TrimSpace(text[start:end]), Identified: true})
	}
	return parts
}
