package templates

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/incident"
)

// TestCatalogsComplete checks that every embedded catalog has exactly the
// keys of every other, with the same placeholders, and no empty string.
func TestCatalogsComplete(t *testing.T) {
	t.Parallel()
	files, _, err := loadSources("")
	if err != nil {
		t.Fatal(err)
	}
	cats := map[string]*catalog{}
	for name, src := range files {
		if locale, ok := strings.CutSuffix(name, ".toml"); ok {
			c, err := parseCatalog(src.path, locale, src.data)
			if err != nil {
				t.Fatal(err)
			}
			cats[locale] = c
		}
	}
	if got := sortedKeys(cats); !slices.Equal(got, []string{"en", "fr", "it"}) {
		t.Fatalf("embedded catalogs %v", got)
	}
	for a, ca := range cats {
		for b, cb := range cats {
			if err := ca.conform(cb); err != nil {
				t.Errorf("%s against %s: %v", a, b, err)
			}
		}
		for _, key := range ca.keys() {
			if s, _ := ca.get(key); strings.TrimSpace(s) == "" {
				t.Errorf("%s: %s is empty", a, key)
			}
		}
	}
	// The keys the code looks up by name exist.
	for _, c := range cats {
		for _, key := range []string{"locale.colon", "locale.and", "locale.date", "locale.datetime",
			"field.all_components", "title.incident", "title.maintenance", "slack.view", "slack.current",
			"slack.thread", "slack.read_more", "notice.disabled_subject", "notice.disabled_body", "notice.disabled_action"} {
			if _, ok := c.get(key); !ok {
				t.Errorf("%s: no %s", c.locale, key)
			}
		}
		for _, p := range []string{"P1", "P2", "P3", "P4"} {
			if _, ok := c.get("priority." + p); !ok {
				t.Errorf("%s: no priority.%s", c.locale, p)
			}
		}
		for _, ch := range allChannels {
			if _, ok := c.get("channel." + ch); !ok {
				t.Errorf("%s: no channel.%s", c.locale, ch)
			}
		}
	}
}

// TestCatalogsDifferentLanguages guards against a copied catalog: the
// strings a subscriber reads most differ between languages.
func TestCatalogsDifferentLanguages(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, Config{})
	for _, key := range []string{"email.unsubscribe", "email.preferences", "email.reason", "summary.resolved", "status.identified"} {
		seen := map[string]string{}
		for _, lang := range r.Locales() {
			s, _ := r.cats[lang].get(key)
			if other, dup := seen[s]; dup {
				t.Errorf("%s is the same in %s and %s: %q", key, lang, other, s)
			}
			seen[s] = lang
		}
	}
}

func TestCatalogFormat(t *testing.T) {
	t.Parallel()
	c, err := parseCatalog("x.toml", "en", []byte("[a]\nb = \"Hello {name}, {name}! {not a placeholder} {\"\nc = \"plain\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		args []string
		want string
		err  bool
	}{
		{"a.b", []string{"name", "Ana"}, "Hello Ana, Ana! {not a placeholder} {", false},
		{"a.c", nil, "plain", false},
		{"a.b", nil, "", true},
		{"a.b", []string{"name"}, "", true},
		{"a.missing", nil, "", true},
	} {
		got, err := c.format(tc.key, tc.args...)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("format(%s, %v) = %q, %v", tc.key, tc.args, got, err)
		}
	}
	if got := placeholders("{b} {a} {b} {not one} {}"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("placeholders = %v", got)
	}
}

// writeOverrides creates an override directory holding files.
func writeOverrides(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestOverridesRejected checks that every kind of broken override is
// rejected by New with the file and, where there is one, the line.
func TestOverridesRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // substring of the error, after the directory
	}{
		{"template syntax", map[string]string{"email.txt.tmpl": "Hello\n{{.Title}\n"}, "email.txt.tmpl:2:"},
		{"unknown field", map[string]string{"sms.txt.tmpl": "ok\n{{.Nope}}\n"}, "sms.txt.tmpl:2:"},
		{"missing catalog key", map[string]string{"email.subject.tmpl": "{{.T.email.nope}}"}, "email.subject.tmpl:1:"},
		{"missing catalog table", map[string]string{"email.html.tmpl": "<p>\n\n{{.T.nope.title}}</p>"}, "email.html.tmpl:3:"},
		{"html context error", map[string]string{"email.html.tmpl": "<a href=\"{{.URL}}\n<p {{.Title}}=1>"}, "email.html.tmpl"},
		{"catalog syntax", map[string]string{"fr.toml": "[email]\nunsubscribe = \"x\"\nbroken = \n"}, "fr.toml:3:"},
		{"catalog unknown key", map[string]string{"it.toml": "[email]\n\nunsubscrbe = \"Disiscriviti\"\n"}, "it.toml:3: unknown key email.unsubscrbe"},
		{"catalog not a string", map[string]string{"en.toml": "[email]\nunsubscribe = 3\n"}, "en.toml:2: email.unsubscribe must be a string"},
		{"catalog top-level value", map[string]string{"en.toml": "unsubscribe = \"x\"\n"}, "en.toml:1:"},
		{"catalog placeholder changed", map[string]string{"fr.toml": "[summary]\nresolved = \"Résolu : {component}.\"\n"}, "fr.toml:2: summary.resolved uses placeholders {component}"},
		{"new locale incomplete", map[string]string{"de.toml": "[email]\nunsubscribe = \"Abmelden\"\n"}, "de.toml: missing keys"},
		{"new locale bad name", map[string]string{"german!.toml": "[email]\n"}, "german!.toml: file name"},
		{"unknown file", map[string]string{"email.htm": "x"}, "email.htm: unknown file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeOverrides(t, tc.files)
			_, err := New(Config{Dir: dir})
			if err == nil {
				t.Fatal("New accepted a broken override")
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, tc.want)) && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("error %q does not name the override directory", err)
			}
			var ce *CatalogError
			var te *TemplateError
			if !errors.As(err, &ce) && !errors.As(err, &te) {
				t.Fatalf("error %T is neither a CatalogError nor a TemplateError", err)
			}
		})
	}
}

// TestOverridesApplied checks that a valid override replaces the embedded
// file, a partial catalog keeps the other keys, and a new locale is
// supported.
func TestOverridesApplied(t *testing.T) {
	t.Parallel()
	en, err := defaultFiles.ReadFile("defaults/en.toml")
	if err != nil {
		t.Fatal(err)
	}
	de := strings.NewReplacer(`unsubscribe = "Unsubscribe"`, `unsubscribe = "Abmelden"`, `name = "English"`, `name = "Deutsch"`).Replace(string(en))
	dir := writeOverrides(t, map[string]string{
		"email.subject.tmpl": "{{.Priority}} {{.Title}} — {{.StatusLabel}}\n",
		"fr.toml":            "[status]\nresolved = \"Incident clos\"\n",
		"de.toml":            de,
		".hidden":            "ignored",
	})
	r := newTestRenderer(t, Config{Dir: dir, Fallback: []string{"en"}})
	if got := r.Locales(); !slices.Equal(got, []string{"en", "de", "fr", "it"}) {
		t.Fatalf("locales %v", got)
	}
	ev := loadCorpus(t)[1] // TSR-1723:2, resolved
	out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelEmail, testRecipient(t, "fr-FR"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.Subject, "— Incident clos") || !strings.Contains(out.Text, "Se désabonner") {
		t.Fatalf("override not applied: subject %q", out.Subject)
	}
	// The corpus update has no German text: a German subscriber gets the
	// text in the first language of the fallback chain, recorded as a
	// fallback, framed in German.
	out, err = r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelEmail, testRecipient(t, "de-AT"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Locale != "en" || out.Frame != "de" || !out.Fallback || out.Confidence != "high" || !strings.Contains(out.Text, "Abmelden") {
		t.Fatalf("update without German: %s in %s %s fallback %v:\n%s", out.Frame, out.Locale, out.Confidence, out.Fallback, out.Text)
	}
	// An update with a German text is written in German.
	german := localizedGolden()
	german.Title = incident.LocalizedText(map[string]string{"en": "Portal maintenance", "de": "Wartung des Portals"})
	german.Body = incident.LocalizedText(map[string]string{"en": "The portal will be unavailable.", "de": "Das Portal ist nicht erreichbar."})
	out, err = r.Render(Update{Event: german, AcceptedAt: acceptedAt}, ChannelEmail, testRecipient(t, "de-AT"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Locale != "de" || out.Fallback || out.Confidence != "high" || !strings.Contains(out.Text, "Abmelden") || !strings.Contains(out.Text, "Das Portal ist nicht erreichbar.") {
		t.Fatalf("new locale: %s %s fallback %v", out.Locale, out.Confidence, out.Fallback)
	}
}

func TestKeyLines(t *testing.T) {
	t.Parallel()
	lines := keyLines([]byte("# c\n[a]\nx = 1\n\n[b]\n  \"y\" = 2\nx = 3\n"))
	want := map[string]int{"a": 2, "a.x": 3, "b": 5, "b.y": 6, "b.x": 7}
	for k, v := range want {
		if lines[k] != v {
			t.Errorf("line of %s = %d, want %d", k, lines[k], v)
		}
	}
}
