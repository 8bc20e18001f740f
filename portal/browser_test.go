package portal

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser is a headless Chromium tab driven by chromedp.
type browser struct {
	t   *testing.T
	ctx context.Context
	e   *env
}

// browser starts Chromium with the flags a closed network needs (no
// background connections), a fresh profile and a phone's width.
func (e *env) browser() *browser {
	t := e.t
	t.Helper()
	bin := requireChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(412, 915),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, e: e}
}

// do runs actions, failing the test on error; each call is bounded.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page (through DevTools:
// the pages themselves run no script).
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// open loads a page of the portal (a path, or a link from a message).
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.e.clientURL(path)))
	b.loaded()
}

// loaded waits until the page is complete. While the browser moves to
// the next page the evaluation may fail (the document it ran in is gone):
// it is tried again.
func (b *browser) loaded() {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === "complete" && !!document.body && !document.body.dataset.left`))
		cancel()
		if err == nil && done {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the page did not load (%v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// text returns the text of the page's main element.
func (b *browser) text() string {
	b.t.Helper()
	return eval[string](b, `document.querySelector("main").innerText`)
}

// status returns the page's HTTP status, as the server answered it.
func (b *browser) title() string { return eval[string](b, `document.title`) }

// fill types into the field with the id.
func (b *browser) fill(id, value string) {
	b.t.Helper()
	eval[bool](b, fmt.Sprintf(`(document.getElementById(%q).value = "", true)`, id))
	b.do("fill "+id, chromedp.SendKeys(chromedp.CSS("#"+id), value))
}

// choose picks an option of a select.
func (b *browser) choose(id, value string) {
	b.t.Helper()
	if !eval[bool](b, fmt.Sprintf(`(s => { s.value = %q; return s.value === %q })(document.getElementById(%q))`, value, value, id)) {
		b.t.Fatalf("%s has no option %q", id, value)
	}
}

// check sets a checkbox of the named group to on or off.
func (b *browser) check(name, value string, on bool) {
	b.t.Helper()
	sel := fmt.Sprintf(`input[name=%q][value=%q]`, name, value)
	if eval[bool](b, fmt.Sprintf(`document.querySelector(%q).checked`, sel)) != on {
		b.do("check "+sel, chromedp.Click(chromedp.CSS(sel)))
	}
}

// submit clicks the submit button of the form whose action is action (the
// first form when empty) and waits for the next page.
func (b *browser) submit(action string) {
	b.t.Helper()
	sel := "form button[type=submit]"
	if action != "" {
		sel = fmt.Sprintf(`form[action=%q] button[type=submit]`, action)
	}
	eval[bool](b, `(document.body.dataset.left = "1", true)`)
	b.do("submit "+sel, chromedp.Click(chromedp.CSS(sel)))
	b.loaded()
}

// expect fails unless the page's main text holds every string.
func (b *browser) expect(what string, want ...string) {
	b.t.Helper()
	got := b.text()
	for _, w := range want {
		if !strings.Contains(got, w) {
			b.t.Fatalf("%s: the page lacks %q:\n%s", what, w, got)
		}
	}
}

func (e *env) clientURL(path string) string { return (&client{base: e.url}).abs(path) }
