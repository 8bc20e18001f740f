package portal

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// TestBrowserRateLimits: past the per-address limit a clear 429 page; past
// the per-IP limit too, in the page's language. (Across processes:
// TestRateLimitsAcrossProcesses.)
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

var ticketPattern = regexp.MustCompile(`(ticket=|name="ticket" value=")[A-Za-z0-9_%-]+`)

// TestNoEnumeration: the subscribe form, the link form and the code form
// answer a known address exactly as an unknown one, down to a wrong code
// typed for a phone number.
func TestNoEnumeration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.operatorSubscriber(&subscribers.Subscriber{ID: "m_known", Locale: "en", Endpoints: []subscribers.Endpoint{
		{ID: "mail", Channel: "email", Address: "known@shop.example"}, {ID: "sms", Channel: "sms", Address: "+33612345678"}}})
	c := e.client()
	same := func(what string, known, unknown func() (int, string)) {
		t.Helper()
		kc, kp := known()
		uc, up := unknown()
		kp, up = ticketPattern.ReplaceAllString(kp, "${1}T"), ticketPattern.ReplaceAllString(up, "${1}T")
		if kc != uc || kp != up {
			t.Errorf("%s: a known address gets %d, an unknown one %d:\n--- known\n%s\n--- unknown\n%s", what, kc, uc, kp, up)
		}
	}
	manage := func(address string) func() (int, string) {
		return func() (int, string) {
			return c.post("/manage?lang=en", "/manage", url.Values{"address": {address}, "lang": {"en"}})
		}
	}
	same("/manage by email", manage("known@shop.example"), manage("nobody@shop.example"))
	same("/manage by phone", manage("+33 6 12 34 56 78"), manage("+33 6 12 34 56 79"))
	code := e.waitCode("+33612345678", 1)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	typed := func(phone string) func() (int, string) {
		return func() (int, string) {
			_, page := manage(phone)()
			m := regexp.MustCompile(`name="ticket" value="([^"]+)"`).FindStringSubmatch(page)
			if m == nil {
				t.Fatalf("no code form:\n%s", page)
			}
			return c.post("/manage?lang=en", "/confirm-code", url.Values{"ticket": {m[1]}, "code": {wrong}, "lang": {"en"}})
		}
	}
	same("a wrong code", typed("+33 6 12 34 56 78"), typed("+33 6 12 34 56 79"))
	subscribe := func(field, address string) func() (int, string) {
		return func() (int, string) {
			return c.post("/subscribe?lang=en", "/subscribe", url.Values{field: {address}, "lang": {"en"}})
		}
	}
	same("/subscribe by email", subscribe("email", "known@shop.example"), subscribe("email", "new@shop.example"))
	same("/subscribe by phone", subscribe("phone", "+33 6 12 34 56 78"), subscribe("phone", "+33 6 12 34 56 77"))
	// What each address received: the known one a link to its
	// preferences, the new one a confirmation; nobody else anything.
	link(t, e.waitMail("known@shop.example", 2), "manage")
	link(t, e.waitMail("new@shop.example", 1), "confirm")
	if n := len(e.mails("nobody@shop.example")); n != 0 {
		t.Fatalf("an unknown address received %d messages", n)
	}
	if n := len(e.twilio.texts("+33612345679")); n != 0 {
		t.Fatalf("an unknown number received %d SMS", n)
	}
}

// TestCodeTries: after the allowed wrong codes, even the right code is
// refused and the number stays unconfirmed.
func TestCodeTries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	c := e.client()
	_, page := c.post("/subscribe?lang=en", "/subscribe", url.Values{"phone": {"+33 6 55 44 33 22"}, "lang": {"en"}})
	m := regexp.MustCompile(`name="ticket" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no code form:\n%s", page)
	}
	code := e.waitCode("+33655443322", 1)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	try := func(typed string) (int, string) {
		return c.post("/subscribe?lang=en", "/confirm-code", url.Values{"ticket": {m[1]}, "code": {typed}, "lang": {"en"}})
	}
	for left := 4; left >= 1; left-- {
		if status, page := try(wrong); status != http.StatusBadRequest || !strings.Contains(page, "Tries left: "+strconv.Itoa(left)) {
			t.Fatalf("wrong code, %d left: %d\n%s", left, status, page)
		}
	}
	for _, typed := range []string{wrong, code} {
		if status, page := try(typed); status != http.StatusGone || !strings.Contains(page, "Too many wrong codes") {
			t.Fatalf("code %s after the last try: %d\n%s", typed, status, page)
		}
	}
	if e.pending("sms", "+33655443322") != 1 {
		t.Fatal("the number was confirmed after too many wrong codes")
	}
}

// secondPortal starts another portal process on the same JetStream server
// (a connection of its own) and returns a client of it.
func (e *env) secondPortal(limits Limits) *client {
	e.t.Helper()
	nc, err := nats.Connect(e.nc.ConnectedUrl())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := New(e.ctx, Config{PublicURL: e.url, Rules: e.rules, Limits: limits, Now: e.clock.Now},
		Deps{Dispatcher: e.d, JetStream: js, Webhook: e.webhook})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	e.t.Cleanup(srv.Close)
	c := e.client()
	c.base = srv.URL
	return c
}

// TestRateLimitsAcrossProcesses: the per-address and per-phone-prefix
// limits count the requests of every portal process sharing the
// JetStream server; a limited request gets the 429 page with Retry-After
// and sends nothing.
func TestRateLimitsAcrossProcesses(t *testing.T) {
	t.Parallel()
	limits := Limits{IP: Limit{N: 100, Per: time.Hour}, Address: Limit{N: 2, Per: time.Hour}, PhonePrefix: Limit{N: 3, Per: time.Hour}}
	e := newEnv(t, envOpts{limits: limits, noMail: true})
	one, two := e.client(), e.secondPortal(limits)
	ask := func(c *client) (int, string) {
		return c.post("/manage?lang=en", "/manage", url.Values{"address": {"who@shop.example"}, "lang": {"en"}})
	}
	for _, c := range []*client{one, two} {
		if status, page := ask(c); status != http.StatusOK {
			t.Fatalf("within the address limit: %d\n%s", status, page)
		}
	}
	for _, c := range []*client{one, two} {
		if status, page := ask(c); status != http.StatusTooManyRequests || !strings.Contains(page, "Too many requests") {
			t.Fatalf("past the address limit: %d\n%s", status, page)
		}
	}
	// Numbers sharing all but their last 4 digits: SMS pumping.
	subscribe := func(c *client, phone string) (int, string) {
		return c.post("/subscribe?lang=en", "/subscribe", url.Values{"phone": {phone}, "lang": {"en"}})
	}
	for i, c := range []*client{one, two, one} {
		if status, page := subscribe(c, fmt.Sprintf("+33 6 12 34 00 0%d", i+1)); status != http.StatusOK {
			t.Fatalf("number %d of the prefix: %d\n%s", i+1, status, page)
		}
	}
	status, page := subscribe(two, "+33 6 12 34 00 04")
	if status != http.StatusTooManyRequests || !strings.Contains(page, "Too many requests") {
		t.Fatalf("past the prefix limit: %d\n%s", status, page)
	}
	e.waitCode("+33612340003", 1)
	if n := len(e.twilio.texts("+33612340004")); n != 0 {
		t.Fatal("an SMS went past the prefix limit")
	}
	if n := e.count(); n != 3 {
		t.Fatalf("%d subscribers stored, want 3", n)
	}
}

// TestKeyRotation: links sealed under the previous key still open (an
// unsubscribe link, one-click), and an unsubscribe link past its 90 days
// is refused and changes nothing.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	const newKey = "the new portal key, the new portal key, the new key"
	e := newEnv(t, envOpts{key: newKey, previousKey: testKey, noMail: true})
	e.operatorSubscriber(&subscribers.Subscriber{ID: "m_rot", Locale: "en", Endpoints: []subscribers.Endpoint{
		{ID: "a", Channel: "email", Address: "a@rot.example"}, {ID: "b", Channel: "email", Address: "b@rot.example"}}})
	old, err := links.New(links.Config{Key: testKey, BaseURL: e.url, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	oneClick := func(target string) int {
		code, _ := c.postRaw(target, url.Values{"List-Unsubscribe": {"One-Click"}})
		return code
	}
	disabled := func(id string) bool {
		s, _, err := e.store.Get(e.ctx, "m_rot")
		if err != nil {
			t.Fatal(err)
		}
		return s.Endpoint(id).Disabled != nil
	}
	if code := oneClick(old.UnsubscribeURL("m_rot", "a", "a@rot.example")); code != http.StatusOK || !disabled("a") {
		t.Fatalf("a link of the previous key: %d, disabled %v", code, disabled("a"))
	}
	expiring := e.d.Links().UnsubscribeURL("m_rot", "b", "b@rot.example")
	e.clock.Advance(91 * 24 * time.Hour)
	code, page := c.postRaw(expiring, url.Values{"List-Unsubscribe": {"One-Click"}})
	e.clock.Advance(-91 * 24 * time.Hour)
	if code != http.StatusGone || !strings.Contains(page, "This link has expired") || disabled("b") {
		t.Fatalf("an unsubscribe link 91 days old: %d, disabled %v\n%s", code, disabled("b"), page)
	}
}
