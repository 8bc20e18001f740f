package portal

import (
	"context"
	"os"
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

// newBrowser starts Chromium with the flags a closed network needs (no
// background connections) and a fresh profile.
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
		chromedp.WindowSize(420, 900), // a phone's width
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, e: e}
}

// run runs chromedp actions, failing the test on error.
func (b *browser) run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	if err := chromedp.Run(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open loads a page of the portal (a path, or a link from a message).
func (b *browser) open(path string) {
	b.t.Helper()
	b.run("open "+path, chromedp.Navigate(b.e.clientURL(path)), chromedp.WaitReady("body"))
}

// text returns the text of the page's main element.
func (b *browser) text() string {
	b.t.Helper()
	var s string
	b.run("read the page", chromedp.Text("main", &s, chromedp.ByQuery))
	return s
}

// submit clicks the submit button of the form matching sel and waits for
// the next page.
func (b *browser) submit(sel string) {
	b.t.Helper()
	b.run("submit "+sel, chromedp.Click(sel+` button[type=submit]`, chromedp.ByQuery), chromedp.WaitReady("body"))
	time.Sleep(0)
}

func (e *env) clientURL(path string) string { return (&client{base: e.url}).abs(path) }

var _ = os.Getenv
