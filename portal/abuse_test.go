package portal

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/links"
	"github.com/heraldhq/herald/subscribers"
)

// count returns how many subscribers are stored.
func (e *env) count() int {
	n := 0
	keys, err := e.js.KeyValue(e.ctx, "subscribers")
	if err != nil {
		e.t.Fatal(err)
	}
	lister, err := keys.ListKeys(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for range lister.Keys() {
		n++
	}
	return n
}

// TestBrowserBadLinks: forged, expired and reused links each get a clear
// page in the browser and change nothing.
func TestBrowserBadLinks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.browser()
	b.open("/subscribe?lang=en")
	b.fill("email", "a@shop.example")
	b.submit("/subscribe")
	confirm := link(t, e.waitMail("a@shop.example", 1), "confirm")
	tok := confirm[strings.LastIndex(confirm, "/")+1:]

	// Forged: one character changed.
	bad := []byte(tok)
	bad[5] = map[bool]byte{true: 'B', false: 'A'}[bad[5] == 'A']
	for _, path := range []string{"/confirm/" + string(bad), "/manage/" + string(bad), "/unsubscribe/" + string(bad), "/confirm/x"} {
		b.open(path + "?lang=en")
		b.expect("forged "+path, "This link is not valid")
	}
	// Expired: eight days later.
	e.clock.Advance(8 * 24 * time.Hour)
	b.open(confirm + "?lang=en")
	b.expect("expired", "This link has expired")
	e.clock.Advance(-8 * 24 * time.Hour)
	if e.pending("email", "a@shop.example") != 1 {
		t.Fatal("a bad link changed the endpoint")
	}
	// Used twice: the second time is refused.
	b.open(confirm)
	b.submit("")
	if e.pending("email", "a@shop.example") != 0 {
		t.Fatal("not confirmed")
	}
	b.open(confirm + "?lang=en")
	b.expect("reused", "already used")
	// A link of a rotated-out key: sealed under another key.
	other, _ := links.New(links.Config{Key: "another key, another key, another key", BaseURL: e.url})
	b.open(other.URL(links.Confirm, other.Seal(links.Confirm, "s_x", "mail", "a@shop.example", time.Hour)) + "?lang=en")
	b.expect("another key", "This link is not valid")
}

// TestBrowserMissingCSRF: a form without its token (or from another site)
// gets the "form expired" page, and nothing is stored or sent.
func TestBrowserMissingCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.browser()
	b.open("/subscribe?lang=fr")
	b.fill("email", "x@shop.example")
	eval[bool](b, `(document.querySelector("input[name=csrf]").remove(), true)`)
	b.submit("/subscribe")
	b.expect("no token", "Ce formulaire a expiré")
	// Another origin posting with a stolen token value is refused too.
	c := e.client()
	_, page := c.get("/subscribe")
	token := csrfPattern.FindStringSubmatch(page)[1]
	req, _ := http.NewRequest(http.MethodPost, e.url+"/subscribe", strings.NewReader(url.Values{"email": {"y@shop.example"}, "csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", resp.StatusCode)
	}
	if n := e.count(); n != 0 {
		t.Fatalf("%d subscribers stored", n)
	}
	if n := e.mail.Total(t); n != 0 {
		t.Fatalf("%d mails sent", n)
	}
}

// TestBrowserRateLimits: past the per-IP limit a clear 429 page; past the
// per-address limit too, across "processes" (the count is in the bucket).
func TestBrowserRateLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{limits: Limits{IP: Limit{N: 3, Per: time.Hour}, Address: Limit{N: 2, Per: time.Hour}}})
	b := e.browser()
	for i := range 3 {
		b.open("/manage?lang=en")
		b.fill("address", "who@shop.example")
		b.submit("/manage")
		if i < 2 {
			b.expect("within the limits", "Check your messages")
		} else {
			b.expect("the address limit", "Too many requests")
		}
	}
	b.open("/manage?lang=it")
	b.fill("address", "other@shop.example")
	b.submit("/manage")
	b.expect("the IP limit", "Troppe richieste", "minuti")
	if code, _ := e.client().post("/manage", "/manage", url.Values{"address": {"z@shop.example"}}); code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", code)
	}
}

// TestBrowserSMSRefused: a number outside the allow-list and a premium-rate
// number are refused with a clear message; the platform's daily SMS cap
// stops codes with a clear page. Nothing is stored.
func TestBrowserSMSRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{countries: []string{"FR", "IT"}, platformCap: 1, noMail: true})
	b := e.browser()
	for _, tc := range []struct{ number, want string }{
		{"+41 79 123 45 67", "do not send SMS to numbers of this country"},
		{"+33 8 99 12 34 56", "only mobile numbers"},
		{"+881 612 345 678", "only mobile numbers"},
	} {
		b.open("/subscribe?lang=en")
		b.fill("phone", tc.number)
		b.submit("/subscribe")
		b.expect(tc.number, tc.want)
	}
	if n := e.count(); n != 0 {
		t.Fatalf("%d subscribers stored", n)
	}
	// The cap: one SMS a day for the platform.
	b.open("/subscribe?lang=en")
	b.fill("phone", "+33 6 11 11 11 11")
	b.submit("/subscribe")
	e.waitCode("+33611111111", 1)
	b.open("/subscribe?lang=en")
	b.fill("phone", "+33 6 22 22 22 22")
	b.submit("/subscribe")
	b.expect("the platform cap", "daily SMS limit is reached")
	if n := e.count(); n != 1 {
		t.Fatalf("%d subscribers stored, want the first only", n)
	}
	if len(e.twilio.texts("+33622222222")) != 0 {
		t.Fatal("an SMS went past the cap")
	}
}

// TestUnsubscribeOneClick: the link of a notification's List-Unsubscribe
// header: a GET shows a page and changes nothing, a one-click POST (RFC
// 8058, no cookie, no form token) disables the endpoint, twice is fine;
// a tampered token is refused; after the address changed, the old link no
// longer applies.
func TestUnsubscribeOneClick(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.operatorSubscriber(&subscribers.Subscriber{ID: "m_dupont", Locale: "fr-FR", Endpoints: []subscribers.Endpoint{
		{ID: "mail", Channel: "email", Address: "ops@dupont.example"}, {ID: "mail2", Channel: "email", Address: "compta@dupont.example"}}})
	e.publish(event("INC-U", 1, "investigating"))
	m := e.waitMail("ops@dupont.example", 1)
	var target string
	for _, l := range m.ListUnsubscribe.Links {
		if strings.Contains(l, "/unsubscribe/") {
			target = l
		}
	}
	if target == "" { // (List-Unsubscribe-Post needs an https link: package templates tests it)
		t.Fatalf("List-Unsubscribe: %+v", m.ListUnsubscribe)
	}
	c := e.client()
	if code, page := c.get(target); code != http.StatusOK || !strings.Contains(page, "Se désabonner") || !strings.Contains(page, `value="One-Click"`) {
		t.Fatalf("GET: %d\n%s", code, page)
	}
	endpoint := func(id string) *subscribers.Endpoint {
		s, _, err := e.store.Get(e.ctx, "m_dupont")
		if err != nil {
			t.Fatal(err)
		}
		return s.Endpoint(id)
	}
	if endpoint("mail").Disabled != nil {
		t.Fatal("a GET unsubscribed")
	}
	tok := target[strings.LastIndex(target, "/")+1:]
	for i := range tok {
		if i%6 != 0 {
			continue
		}
		bad := []byte(tok)
		bad[i] = map[bool]byte{true: 'B', false: 'A'}[bad[i] == 'A']
		if code, _ := c.postRaw("/unsubscribe/"+string(bad), url.Values{"List-Unsubscribe": {"One-Click"}}); code != http.StatusNotFound {
			t.Fatalf("tampered at %d: %d", i, code)
		}
	}
	oneClick := func() int {
		req, _ := http.NewRequest(http.MethodPost, c.abs(target), strings.NewReader("List-Unsubscribe=One-Click"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req) // no cookie: a mailbox provider
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for range 2 {
		if code := oneClick(); code != http.StatusOK {
			t.Fatalf("one-click: %d", code)
		}
	}
	if ep := endpoint("mail"); ep.Disabled == nil || ep.Disabled.Reason != "unsubscribed" {
		t.Fatalf("not unsubscribed: %+v", ep)
	}
	if endpoint("mail2").Disabled != nil {
		t.Fatal("the other endpoint was unsubscribed too")
	}
	// The other address's link, after its address changed, no longer
	// applies to the new address.
	var other string
	for _, l := range e.waitMail("compta@dupont.example", 1).ListUnsubscribe.Links {
		if strings.Contains(l, "/unsubscribe/") {
			other = l
		}
	}
	if _, _, err := e.store.Update(e.ctx, "m_dupont", func(s *subscribers.Subscriber) (bool, error) {
		s.Endpoint("mail2").Address = "new@dupont.example"
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.postRaw(other, url.Values{"List-Unsubscribe": {"One-Click"}}); code != http.StatusGone {
		t.Fatalf("an old address's link: %d, want 410", code)
	}
	if endpoint("mail2").Disabled != nil {
		t.Fatal("an old address's link unsubscribed the new address")
	}
}
