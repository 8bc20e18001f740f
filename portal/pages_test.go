package portal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldhq/herald/links"
	"github.com/heraldhq/herald/subscribers"
)

// pageCase is one page to look at: how to reach it in the browser, and the
// form whose submit button the keyboard must reach.
type pageCase struct {
	name string
	open func(b *browser, lang string)
	form string
}

// pageCases returns every page of the portal, reached for real: tokens
// sealed by the server's key, a session opened by a magic link.
func pageCases(e *env) []pageCase {
	seal := func(p links.Purpose, sub, ep, addr string) string {
		return e.d.Links().URL(p, e.d.Links().Seal(p, sub, ep, addr, time.Hour))
	}
	return []pageCase{
		{"subscribe", func(b *browser, lang string) { b.open("/subscribe?lang=" + lang) }, "/subscribe"},
		{"subscribe-errors", func(b *browser, lang string) {
			b.open("/subscribe?lang=" + lang)
			b.fill("phone", "+33 8 99 12 34 56")
			b.submit("/subscribe")
		}, "/subscribe"},
		{"code", func(b *browser, lang string) {
			b.open("/subscribe?lang=" + lang)
			b.fill("phone", "+39 347 123 4567")
			b.submit("/subscribe")
		}, "/confirm-code"},
		{"confirm", func(b *browser, lang string) {
			b.open(seal(links.Confirm, "m_pages", "pending", "new@pages.example") + "?lang=" + lang)
		}, ""},
		{"manage-request", func(b *browser, lang string) { b.open("/manage?lang=" + lang) }, "/manage"},
		{"manage", func(b *browser, lang string) {
			b.open(seal(links.Manage, "m_pages", "mail", "ops@pages.example") + "?lang=" + lang)
			b.submit("")
			b.open("/manage?lang=" + lang)
		}, "/manage/do/preferences"},
		{"follow", func(b *browser, lang string) { b.open("/follow/INC-P?lang=" + lang) }, "/follow/INC-P"},
		{"unsubscribe", func(b *browser, lang string) {
			b.open(seal(links.Unsubscribe, "m_pages", "mail", "ops@pages.example") + "?lang=" + lang)
		}, ""},
		{"link-expired", func(b *browser, lang string) {
			b.open(e.d.Links().URL(links.Confirm, e.d.Links().Seal(links.Confirm, "m_pages", "pending", "new@pages.example", -time.Hour)) + "?lang=" + lang)
		}, "-"},
	}
}

// pagesEnv is an environment with what the pages need: a subscriber with
// a pending address and a webhook, an open incident.
func pagesEnv(t *testing.T) *env {
	e := newEnv(t, envOpts{noMail: true})
	e.operatorSubscriber(&subscribers.Subscriber{ID: "m_pages", Name: "Boulangerie Dupont", Locale: "fr", Timezone: "Europe/Paris",
		Components: []string{"oney", "3ds"}, Endpoints: []subscribers.Endpoint{
			{ID: "mail", Channel: "email", Address: "ops@pages.example"},
			{ID: "pending", Channel: "email", Address: "new@pages.example", Pending: &subscribers.Pending{Since: time.Now()}},
			{ID: "sms", Channel: "sms", Address: "+33612345678", QuietHours: &subscribers.QuietHours{Start: "22:00", End: "07:00"}},
			{ID: "hook", Channel: "webhook", URL: "https://hooks.pages.example/status", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		}})
	e.publish(event("INC-P", 1, "investigating", "oney"))
	return e
}

// TestPagesAccessible: every page in fr, en and it has the right lang
// attribute, a label for every form control, and its submit button within
// reach of the keyboard.
func TestPagesAccessible(t *testing.T) {
	t.Parallel()
	e := pagesEnv(t)
	b := e.browser()
	for _, pc := range pageCases(e) {
		for _, lang := range Locales {
			what := pc.name + " in " + lang
			pc.open(b, lang)
			if got := eval[string](b, `document.documentElement.lang`); got != lang {
				t.Errorf("%s: lang=%q", what, got)
			}
			unlabelled := eval[[]string](b, `[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
				.filter(el => !el.labels || el.labels.length === 0 || !el.labels[0].innerText.trim()).map(el => el.name || el.id)`)
			if len(unlabelled) > 0 {
				t.Errorf("%s: controls without a label: %v", what, unlabelled)
			}
			if strings.Contains(b.text(), "[") && strings.Contains(b.text(), "]") && strings.Contains(b.text(), ".") {
				if eval[bool](b, `/\[[a-z_]+\.[a-z_]+\]/.test(document.body.innerText)`) {
					t.Errorf("%s: a catalog key shows: %s", what, b.text())
				}
			}
			b.tabTo(what, pc.form)
		}
	}
}

// tabTo presses Tab from the top of the page until the submit button of
// the form (the page's first form when empty; its first link when "-") has
// the focus.
func (b *browser) tabTo(what, form string) {
	b.t.Helper()
	sel := "form button[type=submit]"
	switch form {
	case "":
	case "-":
		sel = "main a"
	default:
		sel = fmt.Sprintf(`form[action=%q] button[type=submit]`, form)
	}
	if !eval[bool](b, fmt.Sprintf(`!!document.querySelector(%q)`, sel)) {
		b.t.Errorf("%s: no submit button %s", what, sel)
		return
	}
	eval[bool](b, `(document.activeElement && document.activeElement.blur(), window.scrollTo(0, 0), true)`)
	for range 80 {
		b.do("press Tab", chromedp.KeyEvent("\t"))
		if eval[bool](b, fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, sel)) {
			return
		}
	}
	b.t.Errorf("%s: the keyboard never reaches %s", what, sel)
}

// TestScreenshots saves a PNG of each page (English, a phone's width) in
// the directory HERALD_SCREENSHOTS names; `make screenshots` runs it.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("HERALD_SCREENSHOTS")
	if dir == "" {
		t.Skip("set HERALD_SCREENSHOTS to a directory (make screenshots)")
	}
	e := pagesEnv(t)
	b := e.browser()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pc := range pageCases(e) {
		lang := "en"
		if pc.name == "manage" {
			lang = "fr"
		}
		pc.open(b, lang)
		png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, pc.name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
