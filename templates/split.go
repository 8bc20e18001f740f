package templates

import (
	"slices"

	"github.com/heraldhq/herald/templates/multilingual"
)

// header is the shared header of a multilingual body, parsed into fields.
type header = multilingual.Header

// newSplitter returns the splitter of the supported locales that
// language identification knows, in the order the status page writes
// them (French, English, Italian, then the others).
func newSplitter(names []string) (*multilingual.Splitter, error) {
	var langs []string
	for _, l := range multilingual.DefaultLanguages {
		if slices.Contains(names, l) {
			langs = append(langs, l)
		}
	}
	for _, l := range names {
		if !slices.Contains(langs, l) && multilingual.Identifiable(l) {
			langs = append(langs, l)
		}
	}
	return multilingual.New(multilingual.Config{Languages: langs})
}

// split cuts a multilingual string into per-language parts and, for a
// body, parses the shared header. It returns no part when the language
// cannot be told; the caller then sends the text whole.
func (r *Renderer) split(s string, body bool) (map[string]string, header) {
	var res multilingual.Result
	if body {
		res = r.splitter.SplitBody(s)
	} else {
		res = r.splitter.SplitTitle(s)
	}
	var h header
	if res.Header != nil {
		h = *res.Header
	}
	return res.Texts(), h
}
