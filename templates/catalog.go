package templates

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"golang.org/x/text/language"
)

// catalog is the message catalog of one locale: every fixed string Herald
// writes in that language, read from "<locale>.toml".
type catalog struct {
	// locale is the catalog's language tag as written in its file name
	// ("fr").
	locale string
	tag    language.Tag
	// file names where the catalog came from, for error messages.
	file string
	// tables holds the strings by table and key; templates read it as .T
	// ({{.T.email.unsubscribe}}), so that a missing key fails the
	// template (missingkey=error).
	tables map[string]map[string]string
	// lines gives the line of each "table.key" in the file, for errors.
	lines map[string]int
}

// CatalogError reports a problem in a message catalog or template file:
// the file, the line when known, and what is wrong.
type CatalogError struct {
	// File is the file name, as found in the override directory or
	// "(embedded) name".
	File string
	// Line is the 1-based line, or 0 when the problem is not tied to one.
	Line int
	// Err is the problem.
	Err error
}

// Error returns "file:line: problem".
func (e *CatalogError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

// Unwrap returns the underlying problem.
func (e *CatalogError) Unwrap() error { return e.Err }

// parseCatalog reads a catalog file: TOML tables of strings, one level
// deep. Errors are *CatalogError with the line.
func parseCatalog(file, locale string, src []byte) (*catalog, error) {
	tag, err := language.Parse(locale)
	if err != nil {
		return nil, &CatalogError{File: file, Err: fmt.Errorf("file name %q is not a BCP 47 language tag", locale)}
	}
	var raw map[string]any
	if _, err := toml.Decode(string(src), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &CatalogError{File: file, Line: pe.Position.Line, Err: errors.New(pe.Message)}
		}
		return nil, &CatalogError{File: file, Err: err}
	}
	c := &catalog{locale: locale, tag: tag, file: file, tables: map[string]map[string]string{}, lines: keyLines(src)}
	for _, table := range sortedKeys(raw) {
		entries, ok := raw[table].(map[string]any)
		if !ok {
			return nil, &CatalogError{File: file, Line: c.lines[table], Err: fmt.Errorf("%q must be a [table] of strings", table)}
		}
		t := make(map[string]string, len(entries))
		for _, key := range sortedKeys(entries) {
			s, ok := entries[key].(string)
			if !ok {
				return nil, &CatalogError{File: file, Line: c.lines[table+"."+key], Err: fmt.Errorf("%s.%s must be a string", table, key)}
			}
			t[key] = s
		}
		c.tables[table] = t
	}
	return c, nil
}

// keyLines maps "table.key" (and "table") to its line in a TOML file of
// simple tables. It is only used to point at a line in error messages.
func keyLines(src []byte) map[string]int {
	lines := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	table := ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			table = strings.Trim(strings.TrimSpace(strings.Trim(line, "[]")), `"`)
			if _, ok := lines[table]; !ok {
				lines[table] = n
			}
		case line == "" || line[0] == '#':
		default:
			if k, _, ok := strings.Cut(line, "="); ok {
				key := strings.Trim(strings.TrimSpace(k), `"`)
				full := key
				if table != "" {
					full = table + "." + key
				}
				if _, ok := lines[full]; !ok {
					lines[full] = n
				}
			}
		}
	}
	return lines
}

// keys returns every "table.key" of the catalog, sorted.
func (c *catalog) keys() []string {
	var out []string
	for table, entries := range c.tables {
		for key := range entries {
			out = append(out, table+"."+key)
		}
	}
	sort.Strings(out)
	return out
}

// get returns the string of "table.key".
func (c *catalog) get(key string) (string, bool) {
	table, k, _ := strings.Cut(key, ".")
	s, ok := c.tables[table][k]
	return s, ok
}

// merge returns a copy of c with the strings of over replacing c's. Keys
// of over that c lacks are reported as errors: they are typos.
func (c *catalog) merge(over *catalog) (*catalog, error) {
	out := &catalog{locale: c.locale, tag: c.tag, file: over.file, tables: map[string]map[string]string{}, lines: over.lines}
	for table, entries := range c.tables {
		out.tables[table] = maps.Clone(entries)
	}
	for _, key := range over.keys() {
		if _, ok := c.get(key); !ok {
			return nil, &CatalogError{File: over.file, Line: over.lines[key], Err: fmt.Errorf("unknown key %s", key)}
		}
		table, k, _ := strings.Cut(key, ".")
		out.tables[table][k] = over.tables[table][k]
	}
	return out, nil
}

// conform checks that c has exactly the keys of ref, with the same
// placeholders in each string.
func (c *catalog) conform(ref *catalog) error {
	var missing []string
	for _, key := range ref.keys() {
		if _, ok := c.get(key); !ok {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		return &CatalogError{File: c.file, Err: fmt.Errorf("missing keys: %s", strings.Join(missing, ", "))}
	}
	for _, key := range c.keys() {
		want, ok := ref.get(key)
		if !ok {
			return &CatalogError{File: c.file, Line: c.lines[key], Err: fmt.Errorf("unknown key %s", key)}
		}
		got, _ := c.get(key)
		if g, w := placeholders(got), placeholders(want); !slices.Equal(g, w) {
			return &CatalogError{File: c.file, Line: c.lines[key],
				Err: fmt.Errorf("%s uses placeholders {%s}, want {%s} as in %s", key, strings.Join(g, "}, {"), strings.Join(w, "}, {"), ref.file)}
		}
		if strings.TrimSpace(got) == "" && strings.TrimSpace(want) != "" {
			return &CatalogError{File: c.file, Line: c.lines[key], Err: fmt.Errorf("%s is empty", key)}
		}
	}
	return nil
}

// placeholders returns the sorted, distinct {name} placeholders of s.
func placeholders(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			break
		}
		name := s[i+1 : i+j]
		if name != "" && !slices.Contains(out, name) && isIdent(name) {
			out = append(out, name)
		}
		s = s[i+j+1:]
	}
	sort.Strings(out)
	return out
}

func isIdent(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// format returns the string of key with its {name} placeholders replaced
// by the values given as name, value pairs. A missing key or a placeholder
// without a value is an error.
func (c *catalog) format(key string, args ...string) (string, error) {
	s, ok := c.get(key)
	if !ok {
		return "", fmt.Errorf("message catalog %s: no key %s", c.locale, key)
	}
	if len(args)%2 != 0 {
		return "", fmt.Errorf("message %s: odd number of placeholder arguments", key)
	}
	if !strings.Contains(s, "{") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			b.WriteString(s)
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 || !isIdent(s[i+1:i+j]) {
			b.WriteString(s[:i+1])
			s = s[i+1:]
			continue
		}
		name := s[i+1 : i+j]
		val, found := "", false
		for k := 0; k < len(args); k += 2 {
			if args[k] == name {
				val, found = args[k+1], true
				break
			}
		}
		if !found {
			return "", fmt.Errorf("message %s: no value for {%s}", key, name)
		}
		b.WriteString(s[:i])
		b.WriteString(val)
		s = s[i+j+1:]
	}
	return b.String(), nil
}

// must returns the string of key; catalogs are checked at start against
// the reference catalog, so a key the code uses is always there.
func (c *catalog) must(key string, args ...string) string {
	s, err := c.format(key, args...)
	if err != nil {
		return "[" + key + "]"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
