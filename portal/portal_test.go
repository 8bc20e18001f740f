package portal

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldhq/herald/subscribers"
)

// TestSubscribeByEmailHTTP walks the double opt-in without a browser:
// nothing but the confirmation reaches the address before it is
// confirmed; then an update for a chosen component arrives and one for
// another component does not.
func TestSubscribeByEmailHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.client()
	code, page := c.post("/subscribe", "/subscribe", url.Values{"email": {"ops@dupont.example"}, "locale": {"fr"},
		"timezone": {"Europe/Paris"}, "components": {"oney"}, "lang": {"fr"}})
	if code != http.StatusOK || !strings.Contains(page, "Confirmez votre abonnement") {
		t.Fatalf("subscribe: %d\n%s", code, page)
	}
	m := e.waitMail("ops@dupont.example", 1)
	if !strings.Contains(m.Subject, "Confirmez") {
		t.Fatalf("confirmation subject %q", m.Subject)
	}
	e.publish(event("INC-1", 1, "investigating", "oney"))
	confirm := link(t, m, "confirm")
	if code, page := c.get(confirm); code != http.StatusOK || !strings.Contains(page, `method="post"`) {
		t.Fatalf("confirm page: %d\n%s", code, page)
	}
	if code, page := c.post(confirm, confirm, url.Values{}); code != http.StatusOK || !strings.Contains(page, "ops@dupont.example") {
		t.Fatalf("confirm: %d\n%s", code, page)
	}
	e.publish(event("INC-2", 1, "investigating", "oney"))
	e.publish(event("INC-3", 1, "investigating", "3ds"))
	m = e.waitMail("ops@dupont.example", 2)
	if !strings.Contains(m.Subject, "INC-2") {
		t.Fatalf("second mail: %q", m.Subject)
	}
	if n := e.targets("INC-3", 1); n != 0 {
		t.Fatalf("the update for another component went to %d endpoints", n)
	}
	if n := len(e.mails("ops@dupont.example")); n != 2 {
		t.Fatalf("%d mails, want 2 (confirmation, INC-2)", n)
	}
}

// TestSecurityHeadersAndCookies: every page forbids scripts and framing
// and sends no referrer; the cookies (the form token's and the preference
// centre's session) are Secure, HttpOnly, SameSite and host-only.
func TestSecurityHeadersAndCookies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	for _, path := range []string{"/subscribe", "/manage", "/confirm/x", "/no-such-page"} {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		for name, want := range map[string]string{
			"Content-Security-Policy": "frame-ancestors 'none'", "Referrer-Policy": "no-referrer",
			"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
		} {
			if !strings.Contains(h.Get(name), want) {
				t.Errorf("%s: %s = %q, want %q", path, name, h.Get(name), want)
			}
		}
		if strings.Contains(h.Get("Content-Security-Policy"), "script-src") || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s: CSP %q lets scripts in", path, h.Get("Content-Security-Policy"))
		}
		for _, c := range resp.Cookies() {
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || !strings.HasPrefix(c.Name, "__Host-") {
				t.Errorf("%s: cookie %s: secure=%v httponly=%v samesite=%v", path, c.Name, c.Secure, c.HttpOnly, c.SameSite)
			}
		}
	}
	// The session cookie of the preference centre too.
	e.operatorSubscriber(&subscribers.Subscriber{ID: "m_cookie", Locale: "en",
		Endpoints: []subscribers.Endpoint{{ID: "mail", Channel: "email", Address: "c@cookie.example"}}})
	c := e.client()
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	open := e.d.Links().PreferencesURL("m_cookie", "mail", "c@cookie.example")
	_, page := c.get(open)
	req, _ := http.NewRequest(http.MethodPost, c.abs(open), strings.NewReader(url.Values{"csrf": {csrfPattern.FindStringSubmatch(page)[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-herald_session" {
			session = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil {
		t.Fatalf("opening the preference centre: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	if !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.Domain != "" {
		t.Errorf("session cookie: %+v", session)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("a page with a token: Referrer-Policy %q", rp)
	}
	// Plain http on a remote host cannot keep Secure cookies: New warns.
	cfg := Config{PublicURL: "ftp://x"}.WithDefaults()
	if cfg.validate() == nil {
		t.Fatal("a non-http public URL accepted")
	}
	if _, err := New(e.ctx, Config{PublicURL: e.url}, Deps{}); err == nil {
		t.Fatal("New without its dependencies accepted")
	}
}
