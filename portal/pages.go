package portal

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
)

//go:embed pages/*.html
var pageFiles embed.FS

//go:embed static/portal.css
var css []byte

func serveCSS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(css)
}

// pageSet holds one template per page, each with the layout.
type pageSet struct {
	byName map[string]*template.Template
}

func parsePages() (*pageSet, error) {
	layout, err := template.New("layout.html").Option("missingkey=error").ParseFS(pageFiles, "pages/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(pageFiles, "pages/*.html")
	if err != nil {
		return nil, err
	}
	ps := &pageSet{byName: map[string]*template.Template{}}
	for _, n := range names {
		if n == "pages/layout.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(pageFiles, n)
		if err != nil {
			return nil, err
		}
		ps.byName[strings.TrimSuffix(strings.TrimPrefix(n, "pages/"), ".html")] = t
	}
	return ps, nil
}

// page is the data of every page.
type page struct {
	cats catalogs
	// Lang is the page's language; Langs the switch's links.
	Lang  string
	Langs []langLink
	// Title is the page's title (a catalog key, translated).
	Title string
	// CSRF is the form token.
	CSRF string
	// Notes and Errors are messages shown above the content.
	Notes, Errors []string
	// Data is the page's own data.
	Data any
}

type langLink struct {
	Lang, Name, URL string
	Current         bool
}

var langNames = map[string]string{"en": "English", "fr": "Français", "it": "Italiano"}

// T returns the catalog string of key in the page's language.
func (p *page) T(key string, args ...string) string { return p.cats.text(p.Lang, key, args...) }

// newPage prepares the data of a page in lang.
func (s *Server) newPage(w http.ResponseWriter, r *http.Request, lang, titleKey string, titleArgs ...string) *page {
	p := &page{cats: s.cats, Lang: lang, CSRF: s.csrfToken(w, r)}
	p.Title = p.T(titleKey, titleArgs...)
	path, q := r.URL.Path, url.Values{}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// The switch is a link: it must lead to a page a GET shows.
		switch {
		case strings.HasPrefix(path, "/manage/do/"):
			path = "/manage"
		case path == "/confirm-code":
			q.Set("ticket", r.PostFormValue("ticket"))
		}
	}
	p.switchTo(path, q)
	return p
}

// switchTo points the language switch at path with the query q (and the
// language).
func (p *page) switchTo(path string, q url.Values) {
	p.Langs = p.Langs[:0]
	for _, l := range Locales {
		v := url.Values{"lang": {l}}
		for k, vs := range q {
			v[k] = vs
		}
		p.Langs = append(p.Langs, langLink{Lang: l, Name: langNames[l], URL: path + "?" + v.Encode(), Current: l == p.Lang})
	}
}

// render writes a page.
func (s *Server) render(w http.ResponseWriter, status int, name string, p *page) {
	if d, ok := p.Data.(codeData); ok {
		// The code form stays in place when the language changes.
		p.switchTo("/confirm-code", url.Values{"ticket": {d.Ticket}})
	}
	t := s.pages.byName[name]
	var buf bytes.Buffer
	if t == nil {
		s.logger.Error("portal: no such page", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		s.logger.Error("portal: rendering a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// messageData is a message page's content.
type messageData struct {
	Text  string
	Links []pageLink
}

type pageLink struct{ URL, Text string }

// message answers a page with a title and a text (catalog keys; textKey may
// be empty), and links back to the forms.
func (s *Server) message(w http.ResponseWriter, r *http.Request, status int, lang, titleKey, textKey string, args []string) {
	p := s.newPage(w, r, lang, titleKey, args...)
	d := messageData{}
	if textKey != "" {
		d.Text = p.T(textKey, args...)
	}
	d.Links = []pageLink{{"/subscribe?lang=" + lang, p.T("site.subscribe")}, {"/manage?lang=" + lang, p.T("site.manage")}}
	p.Data = d
	s.render(w, status, "message", p)
}
