package portal

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/subscribers"
)

// TestBrowserSubscribeByEmail: the subscribe form in Chromium, the
// confirmation mail in Mailpit, the click that activates the subscriber;
// then an update for a chosen component arrives and one for another does
// not.
func TestBrowserSubscribeByEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.browser()
	b.open("/subscribe?lang=en")
	b.fill("email", "ops@dupont.example")
	b.choose("locale", "fr")
	b.check("components", "oney", true)
	b.check("components", "nexo-terminals", true)
	b.submit("/subscribe")
	b.expect("after subscribing", "Confirm your subscription", "7 days")
	m := e.waitMail("ops@dupont.example", 1)
	if !strings.Contains(m.Subject, "Confirmez") {
		t.Fatalf("the confirmation is not in the subscriber's language: %q", m.Subject)
	}
	// Not confirmed yet: an update reaches nobody.
	e.publish(event("INC-1", 1, "investigating", "oney"))
	if n := e.targets("INC-1", 1); n != 0 {
		t.Fatalf("an update went to %d unconfirmed endpoints", n)
	}
	b.open(link(t, m, "confirm"))
	b.expect("confirmation page", "ops@dupont.example")
	b.submit("")
	b.expect("after confirming", "ops@dupont.example")
	if got := eval[string](b, `location.pathname`); got != "/manage" {
		t.Fatalf("after confirming: at %s, want the preference centre", got)
	}
	e.publish(event("INC-2", 1, "identified", "oney"))
	e.publish(event("INC-3", 1, "identified", "3ds"))
	m = e.waitMail("ops@dupont.example", 2)
	if !strings.Contains(m.Subject, "INC-2") || !strings.Contains(m.Text, "Texte français") {
		t.Fatalf("the update mail: %q\n%s", m.Subject, m.Text)
	}
	if n := e.targets("INC-3", 1); n != 0 {
		t.Fatalf("the update for another component went to %d endpoints", n)
	}
	if len(e.mails("ops@dupont.example")) != 2 {
		t.Fatal("more mail than the confirmation and INC-2")
	}
	if !strings.Contains(m.Text, "/manage/") || !strings.Contains(m.Text, "/unsubscribe/") {
		t.Fatalf("the update lacks the preference and unsubscribe links:\n%s", m.Text)
	}
}

// TestBrowserSMSCode: a number confirmed by the code sent by SMS; a wrong
// code is refused with the tries left; the language switch keeps the code
// form; an expired code is refused; neither activates anything.
func TestBrowserSMSCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{noMail: true})
	b := e.browser()
	subscribeSMS := func(phone string) {
		b.open("/subscribe?lang=it")
		b.fill("phone", phone)
		b.submit("/subscribe")
		b.expect("the code form", "codice di 6 cifre")
	}
	subscribeSMS("+33 6 12 34 56 78")
	code := e.waitCode("+33612345678", 1)
	if !strings.Contains(e.twilio.texts("+33612345678")[0], "codice di conferma") {
		t.Fatalf("the SMS is not in Italian: %q", e.twilio.texts("+33612345678")[0])
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	b.fill("code", wrong)
	b.submit("/confirm-code")
	b.expect("a wrong code", "non è corretto", "4")
	if e.pending("sms", "+33612345678") != 1 {
		t.Fatal("a wrong code changed the endpoint")
	}
	// The language switch keeps the code form.
	b.follow(`nav a[hreflang="en"]`)
	b.expect("the code form in English", "Confirm your mobile number", "6-digit code")
	if got := eval[string](b, `document.documentElement.lang`); got != "en" {
		t.Fatalf("after the switch: lang=%q", got)
	}
	b.fill("code", code)
	b.submit("/confirm-code")
	b.expect("the right code", "+33612345678")
	if e.pending("sms", "+33612345678") != 0 {
		t.Fatal("the right code did not confirm the number")
	}

	// An expired code.
	subscribeSMS("+33 6 98 76 54 32")
	code = e.waitCode("+33698765432", 1)
	e.clock.Advance(11 * time.Minute)
	b.fill("code", code)
	b.submit("/confirm-code")
	b.expect("an expired code", "scaduto")
	if e.pending("sms", "+33698765432") != 1 {
		t.Fatal("an expired code confirmed the number")
	}
}

// pending counts the pending endpoints with the address.
func (e *env) pending(channel, address string) int {
	n := 0
	for _, id := range e.d.Index().Holders(channel, address) {
		sub, _, err := e.store.Get(e.ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, ep := range sub.Endpoints {
			if ep.Address == address && ep.Pending != nil {
				n++
			}
		}
	}
	return n
}

// operatorSubscriber stores a subscriber as an operator would (no
// confirmation) and waits for the index.
func (e *env) operatorSubscriber(s *subscribers.Subscriber) {
	e.t.Helper()
	if _, err := e.store.Put(e.ctx, s); err != nil {
		e.t.Fatal(err)
	}
	e.waitFor("the index", 5*time.Second, func() bool {
		_, ok := e.d.Index().Revision(s.ID)
		return ok
	})
}

// login asks for a magic link on /manage and opens it in the browser.
func (e *env) login(b *browser, address string, mails int) string {
	e.t.Helper()
	b.open("/manage?lang=en")
	b.fill("address", address)
	b.submit("/manage")
	b.expect("after asking for a link", "Check your messages")
	m := e.waitMail(address, mails)
	l := link(e.t, m, "manage")
	b.open(l)
	b.submit("")
	b.expect("the preference centre", "Where notifications go")
	return l
}

// TestBrowserMagicLinkPreferences: an operator's subscriber asks for a
// link, opens it, changes components and language; the next update
// arrives in the new language and only for the new components. The link
// works once.
func TestBrowserMagicLinkPreferences(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.operatorSubscriber(&subscribers.Subscriber{ID: "m_1042", Name: "Boulangerie Dupont", Locale: "en", Components: []string{"oney"},
		Endpoints: []subscribers.Endpoint{{ID: "mail", Channel: "email", Address: "ops@dupont.example"}}})
	b := e.browser()
	magic := e.login(b, "ops@dupont.example", 1)
	b.check("components", "oney", false)
	b.check("components", "3ds", true)
	b.choose("locale", "it")
	b.submit("/manage/do/preferences")
	b.expect("after saving", "Le tue preferenze sono salvate")
	sub, _, err := e.store.Get(e.ctx, "m_1042")
	if err != nil || sub.Locale != "it" || len(sub.Components) != 1 || sub.Components[0] != "3ds" {
		t.Fatalf("stored: %+v %v", sub, err)
	}
	e.waitFor("the index to see the change", 5*time.Second, func() bool {
		rev, _ := e.d.Index().Revision("m_1042")
		_, got, _ := e.store.Get(e.ctx, "m_1042")
		return rev == got
	})
	e.publish(event("INC-5", 1, "investigating", "oney"))
	e.publish(event("INC-6", 1, "investigating", "3ds"))
	m := e.waitMail("ops@dupont.example", 2)
	if !strings.Contains(m.Subject, "INC-6") || !strings.Contains(m.Text, "Testo italiano") {
		t.Fatalf("the update: %q\n%s", m.Subject, m.Text)
	}
	if n := e.targets("INC-5", 1); n != 0 {
		t.Fatal("the update for the old component was sent")
	}
	// The magic link works once.
	b2 := e.browser()
	b2.open(magic)
	b2.expect("a used link", "already used")
}

// hookReceiver records the webhooks it receives.
type hookReceiver struct {
	url  string
	mu   sync.Mutex
	got  []receivedHook
	code int
}

type receivedHook struct {
	header http.Header
	body   []byte
}

func startHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{code: http.StatusAccepted}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got = append(h.got, receivedHook{header: r.Header.Clone(), body: body})
		code := h.code
		h.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hooks/status"
	return h
}

func (h *hookReceiver) last(t *testing.T) receivedHook {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.got) == 0 {
		t.Fatal("no webhook received")
	}
	return h.got[len(h.got)-1]
}

// verify checks a received webhook's signature with the Standard Webhooks
// library and the secret.
func verify(t *testing.T, secret string, h receivedHook) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh.Verify(h.body, h.header)
}

// TestBrowserWebhook: a merchant adds a webhook, sees its secret once,
// sends the test event (signed: the Standard Webhooks library verifies it)
// and sees the answer's status; after a rotation both secrets verify
// during the overlap, and notifications are signed with both.
func TestBrowserWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	recv := startHookReceiver(t)
	e.operatorSubscriber(&subscribers.Subscriber{ID: "p_7", Locale: "en",
		Endpoints: []subscribers.Endpoint{{ID: "mail", Channel: "email", Address: "dev@partner.example"}}})
	b := e.browser()
	e.login(b, "dev@partner.example", 1)
	b.fill("add-webhook", recv.url)
	b.submit("/manage/do/add-webhook")
	b.expect("after adding", "shown only once")
	first := eval[string](b, `document.querySelector(".secret code").innerText`)
	if !strings.HasPrefix(first, "whsec_") {
		t.Fatalf("secret %q", first)
	}
	b.open("/manage")
	if strings.Contains(b.text(), first) {
		t.Fatal("the secret is shown a second time")
	}
	b.submit("/manage/do/test")
	b.expect("after the test event", "HTTP status 202")
	h := recv.last(t)
	if err := verify(t, first, h); err != nil {
		t.Fatalf("test event signature: %v", err)
	}
	if !strings.Contains(string(h.body), `"type":"test"`) {
		t.Fatalf("test event body %s", h.body)
	}
	b.submit("/manage/do/rotate")
	b.expect("after rotating", "previous secret keeps signing")
	second := eval[string](b, `document.querySelector(".secret code").innerText`)
	if second == first || !strings.HasPrefix(second, "whsec_") {
		t.Fatalf("rotated secret %q", second)
	}
	b.submit("/manage/do/test")
	h = recv.last(t)
	for _, s := range []string{first, second} {
		if err := verify(t, s, h); err != nil {
			t.Fatalf("during the overlap, the signature does not verify with a secret: %v", err)
		}
	}
	// Notifications too carry both signatures.
	e.publish(event("INC-9", 1, "investigating"))
	e.waitFor("the notification", 20*time.Second, func() bool {
		return strings.Contains(string(recv.last(t).body), "INC-9")
	})
	for _, s := range []string{first, second} {
		if err := verify(t, s, recv.last(t)); err != nil {
			t.Fatalf("the notification does not verify with a secret: %v", err)
		}
	}
	// After the overlap, only the new secret signs.
	e.clock.Advance(25 * time.Hour)
	b.submit("/manage/do/test")
	h = recv.last(t)
	if verify(t, first, h) == nil {
		t.Fatal("the old secret still verifies after the overlap")
	}
	if err := verify(t, second, h); err != nil {
		t.Fatal(err)
	}
	// A refused answer is shown too.
	recv.mu.Lock()
	recv.code = http.StatusGone
	recv.mu.Unlock()
	b.submit("/manage/do/test")
	b.expect("a refused test event", "HTTP status 410")
	// The SSRF guard applies to merchants' URLs.
	b.fill("add-webhook", "https://169.254.169.254/latest/meta-data")
	b.submit("/manage/do/add-webhook")
	b.expect("a metadata URL", "refused")
}

// TestBrowserFollowIncident: anyone follows one incident by email after
// confirming; the updates arrive until the resolved one, and nothing
// after.
func TestBrowserFollowIncident(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.publish(event("INC-F", 1, "investigating", "payouts"))
	b := e.browser()
	b.open("/follow/INC-F?lang=fr")
	b.fill("email", "curious@shop.example")
	b.submit("/follow/INC-F")
	m := e.waitMail("curious@shop.example", 1)
	if !strings.Contains(m.Subject, "INC-F") {
		t.Fatalf("follow confirmation %q", m.Subject)
	}
	b.open(link(t, m, "confirm"))
	b.expect("the confirmation page", "INC-F")
	b.submit("")
	b.expect("confirmed", "INC-F")
	e.waitFor("the follower in the index", 5*time.Second, func() bool { return len(e.d.Index().Followers("INC-F")) == 1 })
	e.waitFor("the follower active", 5*time.Second, func() bool {
		for id := range e.d.Index().Followers("INC-F") {
			sub, _, _ := e.store.Get(e.ctx, id)
			return sub != nil && sub.Endpoint("mail").Pending == nil
		}
		return false
	})
	e.publish(event("INC-F", 2, "monitoring", "payouts"))
	e.waitMail("curious@shop.example", 2)
	e.publish(event("INC-F", 3, "resolved", "payouts"))
	m = e.waitMail("curious@shop.example", 3)
	if !strings.Contains(m.Subject, "INC-F") {
		t.Fatalf("resolved mail %q", m.Subject)
	}
	e.waitFor("the following to end", 10*time.Second, func() bool {
		for _, ended := range e.d.Index().Followers("INC-F") {
			return ended
		}
		return false
	})
	e.publish(event("INC-F", 4, "postmortem", "payouts"))
	if n := e.targets("INC-F", 4); n != 0 {
		t.Fatalf("the postmortem went to %d endpoints", n)
	}
	if n := len(e.mails("curious@shop.example")); n != 3 {
		t.Fatalf("%d mails, want 3", n)
	}
	// A closed incident cannot be followed.
	b.open("/follow/INC-F?lang=en")
	b.expect("a closed incident", "nothing left to follow")
}
