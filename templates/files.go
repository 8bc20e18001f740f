package templates

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	texttemplate "text/template"
)

//go:embed defaults/*.tmpl defaults/*.toml
var defaultFiles embed.FS

// The template files, and whether each is HTML (html/template) or text
// (text/template).
var templateFiles = map[string]bool{
	"email.subject.tmpl":  false,
	"email.txt.tmpl":      false,
	"email.html.tmpl":     true,
	"sms.txt.tmpl":        false,
	"notice.subject.tmpl": false,
	"notice.txt.tmpl":     false,
	"notice.html.tmpl":    true,
}

// referenceLocale is the catalog whose keys every other catalog must have.
const referenceLocale = "en"

// source is one template or catalog file.
type source struct {
	name string // file name ("fr.toml")
	path string // where it was read, for errors
	data []byte
}

// loadSources returns the embedded files, each replaced by the file of the
// same name in dir when there is one, plus the extra catalogs of dir.
// Catalog overrides are returned separately so that they can be merged.
func loadSources(dir string) (files map[string]source, overrides map[string]source, err error) {
	files = map[string]source{}
	entries, err := fs.ReadDir(defaultFiles, "defaults")
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		data, err := defaultFiles.ReadFile("defaults/" + e.Name())
		if err != nil {
			return nil, nil, err
		}
		files[e.Name()] = source{name: e.Name(), path: "(embedded) " + e.Name(), data: data}
	}
	overrides = map[string]source{}
	if dir == "" {
		return files, overrides, nil
	}
	list, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("templates directory: %w", err)
	}
	for _, e := range list {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		_, isTemplate := templateFiles[name]
		if !isTemplate && !strings.HasSuffix(name, ".toml") {
			return nil, nil, &CatalogError{File: filepath.Join(dir, name),
				Err: fmt.Errorf("unknown file: overrides are named %s or <locale>.toml", strings.Join(sortedKeys(templateFiles), ", "))}
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("templates directory: %w", err)
		}
		src := source{name: name, path: path, data: data}
		if isTemplate {
			files[name] = src
		} else {
			overrides[name] = src
		}
	}
	return files, overrides, nil
}

// loadCatalogs parses the embedded catalogs, merges the overrides into
// them, adds new locales, and checks that every catalog has exactly the
// reference catalog's keys and placeholders.
func loadCatalogs(files, overrides map[string]source) (map[string]*catalog, error) {
	cats := map[string]*catalog{}
	for name, src := range files {
		locale, ok := strings.CutSuffix(name, ".toml")
		if !ok {
			continue
		}
		c, err := parseCatalog(src.path, locale, src.data)
		if err != nil {
			return nil, err
		}
		cats[locale] = c
	}
	ref := cats[referenceLocale]
	if ref == nil {
		return nil, errors.New("embedded catalog " + referenceLocale + ".toml missing")
	}
	for _, name := range sortedKeys(overrides) {
		src := overrides[name]
		locale := strings.TrimSuffix(name, ".toml")
		c, err := parseCatalog(src.path, locale, src.data)
		if err != nil {
			return nil, err
		}
		if base, ok := cats[locale]; ok {
			if c, err = base.merge(c); err != nil {
				return nil, err
			}
		}
		cats[locale] = c
	}
	ref = cats[referenceLocale]
	for _, locale := range sortedKeys(cats) {
		if err := cats[locale].conform(ref); err != nil {
			return nil, err
		}
	}
	return cats, nil
}

// templateSet holds the parsed templates.
type templateSet struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
	path map[string]string
}

// parseTemplates parses every template file; a template fails on a missing
// map key (missingkey=error), so a catalog key that does not exist is an
// error, found by the trial rendering of New.
func parseTemplates(files map[string]source) (*templateSet, error) {
	ts := &templateSet{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}, path: map[string]string{}}
	names := sortedKeys(templateFiles)
	sort.Strings(names)
	for _, name := range names {
		src, ok := files[name]
		if !ok {
			return nil, errors.New("embedded template " + name + " missing")
		}
		ts.path[name] = src.path
		if templateFiles[name] {
			t, err := htmltemplate.New(src.path).Option("missingkey=error").Parse(string(src.data))
			if err != nil {
				return nil, templateError(src.path, err)
			}
			ts.html[name] = t
			continue
		}
		t, err := texttemplate.New(src.path).Option("missingkey=error").Parse(string(src.data))
		if err != nil {
			return nil, templateError(src.path, err)
		}
		ts.text[name] = t
	}
	return ts, nil
}

// templateError wraps a parse or execution error. The template packages
// already name the file and line ("template: PATH:LINE: ..."), so the
// message is kept and the file recorded for errors.As.
func templateError(path string, err error) error {
	return &TemplateError{File: path, Err: err}
}

// TemplateError reports a template that does not parse or does not
// render; its message names the file and line.
type TemplateError struct {
	// File is the template's path (or "(embedded) name").
	File string
	// Err is the error of text/template or html/template, whose message
	// holds the line.
	Err error
}

// Error returns the template package's message, which starts with
// "template: FILE:LINE:".
func (e *TemplateError) Error() string { return e.Err.Error() }

// Unwrap returns the template package's error.
func (e *TemplateError) Unwrap() error { return e.Err }

// execText runs a text template into a string.
func (ts *templateSet) execText(name string, data any) (string, error) {
	var b strings.Builder
	if err := ts.text[name].Execute(&b, data); err != nil {
		return "", templateError(ts.path[name], err)
	}
	return b.String(), nil
}

// execHTML runs an HTML template into a string.
func (ts *templateSet) execHTML(name string, data any) (string, error) {
	var b strings.Builder
	if err := ts.html[name].Execute(&b, data); err != nil {
		return "", templateError(ts.path[name], err)
	}
	return b.String(), nil
}
