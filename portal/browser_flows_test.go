package portal

import (
	"strings"
	"testing"
	"time"

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
// code is refused with the tries left; an expired code is refused; neither
// activates anything.
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
	if e.pendingSMS("+33612345678") != 1 {
		t.Fatal("a wrong code changed the endpoint")
	}
	b.fill("code", code)
	b.submit("/confirm-code")
	b.expect("the right code", "+33612345678")
	if e.pendingSMS("+33612345678") != 0 {
		t.Fatal("the right code did not confirm the number")
	}

	// An expired code.
	subscribeSMS("+33 6 98 76 54 32")
	code = e.waitCode("+33698765432", 1)
	e.clock.Advance(11 * time.Minute)
	b.fill("code", code)
	b.submit("/confirm-code")
	b.expect("an expired code", "scaduto")
	if e.pendingSMS("+33698765432") != 1 {
		t.Fatal("an expired code confirmed the number")
	}
}

// pendingSMS counts the pending SMS endpoints with the number.
func (e *env) pendingSMS(number string) int {
	n := 0
	for _, id := range e.d.Index().Holders("sms", number) {
		sub, _, err := e.store.Get(e.ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, ep := range sub.Endpoints {
			if ep.Address == number && ep.Pending != nil {
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
