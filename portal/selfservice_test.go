package portal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/subscribers"
)

// follow clicks a link of the page and waits for the next page.
func (b *browser) follow(sel string) {
	b.t.Helper()
	eval[bool](b, `(document.body.dataset.left = "1", true)`)
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
	b.loaded()
}

// holding returns where the streams (KV buckets included) still hold
// text: "stream #sequence" for each message.
func (e *env) holding(text string) []string {
	e.t.Helper()
	var out []string
	names := e.js.StreamNames(e.ctx)
	for name := range names.Name() {
		st, err := e.js.Stream(e.ctx, name)
		if err != nil {
			e.t.Fatal(err)
		}
		info, err := st.Info(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := st.GetMsg(e.ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				e.t.Fatal(err)
			}
			if bytes.Contains(bytes.ToLower(m.Data), []byte(strings.ToLower(text))) || strings.Contains(strings.ToLower(m.Subject), strings.ToLower(text)) {
				out = append(out, fmt.Sprintf("%s #%d (%s)", name, seq, m.Subject))
			}
		}
	}
	if err := names.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestBrowserDeleteSubscription: a merchant deletes the subscription from
// the preference centre: the subscriber is gone, no stream or bucket holds
// its address any more, the delivery history keeps its records by id, the
// session ends and nothing more is sent.
func TestBrowserDeleteSubscription(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	const address = "leaving@shop.example"
	e.operatorSubscriber(&subscribers.Subscriber{ID: "m_leaving", Locale: "en",
		Endpoints: []subscribers.Endpoint{{ID: "mail", Channel: "email", Address: address}}})
	e.publish(event("INC-D", 1, "investigating"))
	e.waitMail(address, 1)
	b := e.browser()
	e.login(b, address, 2)
	b.submit("/manage/do/delete")
	b.expect("after deleting", "Subscription deleted", "erased")
	if _, _, err := e.store.Get(e.ctx, "m_leaving"); !errors.Is(err, subscribers.ErrNotFound) {
		t.Fatalf("the subscriber is still stored: %v", err)
	}
	// Work-queue jobs leave their stream once acknowledged: wait for that.
	var held []string
	deadline := time.Now().Add(20 * time.Second)
	for held = e.holding(address); len(held) > 0 && time.Now().Before(deadline); held = e.holding(address) {
		time.Sleep(100 * time.Millisecond)
	}
	if len(held) > 0 {
		t.Fatalf("the address is still stored: %v", held)
	}
	if len(e.holding(`"subscriber_id":"m_leaving"`)) == 0 {
		t.Fatal("the delivery history lost the subscriber's records")
	}
	b.open("/manage?lang=en")
	b.expect("after deleting, the session", "Send me a link")
	e.waitFor("the index to forget the subscriber", 5*time.Second, func() bool {
		_, ok := e.d.Index().Revision("m_leaving")
		return !ok
	})
	e.publish(event("INC-D", 2, "monitoring"))
	if n := e.targets("INC-D", 2); n != 0 {
		t.Fatalf("an update went to %d endpoints after the deletion", n)
	}
}

// TestBrowserMagicLinkScope: the link asked for on /manage goes to the
// address given and no other of the subscriber, opens the preferences of
// that address, and expires after an hour.
func TestBrowserMagicLinkScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.operatorSubscriber(&subscribers.Subscriber{ID: "m_two", Locale: "en", Endpoints: []subscribers.Endpoint{
		{ID: "ops", Channel: "email", Address: "ops@two.example"}, {ID: "billing", Channel: "email", Address: "billing@two.example"}}})
	b := e.browser()
	ask := func(address string) string {
		b.open("/manage?lang=en")
		b.fill("address", address)
		b.submit("/manage")
		b.expect("after asking for a link", "Check your messages", "1 hour")
		return link(t, e.waitMail(address, 1), "manage")
	}
	ops := ask("ops@two.example")
	billing := ask("billing@two.example")
	e.waitMail("ops@two.example", 1) // still one: the second request went to billing only
	b.open(ops)
	b.expect("the ops link", "ops@two.example")
	if strings.Contains(b.text(), "billing@") {
		t.Fatal("the ops link names the other address")
	}
	e.clock.Advance(61 * time.Minute)
	b.open(billing)
	b.expect("an hour later", "This link has expired")
	e.clock.Advance(-61 * time.Minute)
}

// slackMessages returns the Slack messages written to the outbox.
func (e *env) slackMessages() []string {
	e.t.Helper()
	var out []string
	dir := filepath.Join(e.outbox, "slack")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		data, err := os.ReadFile(path)
		out = append(out, string(data))
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		e.t.Fatal(err)
	}
	return out
}

// TestBrowserSlack: a merchant adds a Slack incoming webhook; a URL that
// is not Slack's is refused as the admin API refuses it; the URL (a
// credential) is shown by its host only; the Slack messages carry the
// preference link next to the unsubscribe link, and that link opens the
// preference centre.
func TestBrowserSlack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.operatorSubscriber(&subscribers.Subscriber{ID: "m_slack", Locale: "en",
		Endpoints: []subscribers.Endpoint{{ID: "mail", Channel: "email", Address: "team@slack.example"}}})
	b := e.browser()
	e.login(b, "team@slack.example", 1)
	b.fill("add-slack", "https://hooks.slack.example/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX")
	b.submit("/manage/do/add-slack")
	b.expect("a URL not of Slack", "This URL is refused")
	sub, _, err := e.store.Get(e.ctx, "m_slack")
	if err != nil || len(sub.Endpoints) != 1 {
		t.Fatalf("a refused URL was stored: %+v %v", sub, err)
	}
	const hook = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
	b.fill("add-slack", hook)
	b.submit("/manage/do/add-slack")
	b.expect("a Slack URL", "Added.", "hooks.slack.com/…")
	if strings.Contains(b.text(), "XXXXXXXX") {
		t.Fatal("the page shows the Slack URL whole")
	}
	e.waitFor("the index to see the Slack endpoint", 5*time.Second, func() bool {
		rev, _ := e.d.Index().Revision("m_slack")
		_, got, _ := e.store.Get(e.ctx, "m_slack")
		return rev == got
	})
	e.publish(event("INC-S", 1, "investigating"))
	var msgs []string
	e.waitFor("the Slack message", 20*time.Second, func() bool {
		msgs = e.slackMessages()
		return len(msgs) > 0
	})
	var prefs string
	for _, l := range linkPattern.FindAllString(msgs[0], -1) {
		if strings.Contains(l, "/manage/") {
			prefs = l
		}
	}
	if prefs == "" || !strings.Contains(msgs[0], "/unsubscribe/") {
		t.Fatalf("the Slack message lacks the preference or the unsubscribe link:\n%s", msgs[0])
	}
	b2 := e.browser()
	b2.open(prefs)
	b2.submit("")
	b2.expect("the preference centre from Slack", "Where notifications go")
	if n := e.targets("INC-S", 1); n != 2 {
		t.Fatalf("the update went to %d endpoints, want the email and Slack", n)
	}
}

// TestBrowserPreferenceCentre: the rest of the preference centre in the
// browser: statuses, priority, time zone and SMS quiet hours are stored;
// pausing stops every notification until resumed; an added address gets
// its confirmation and nothing else until confirmed; an address is
// removed.
func TestBrowserPreferenceCentre(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.operatorSubscriber(&subscribers.Subscriber{ID: "m_prefs", Locale: "en", Endpoints: []subscribers.Endpoint{
		{ID: "mail", Channel: "email", Address: "ops@prefs.example"}, {ID: "sms", Channel: "sms", Address: "+33612345678"}}})
	b := e.browser()
	e.login(b, "ops@prefs.example", 1)
	b.check("statuses", "resolved", true)
	b.choose("min_priority", "P2")
	b.choose("timezone", "Europe/Rome")
	eval[bool](b, `(document.getElementById("quiet_start").value = "22:00", document.getElementById("quiet_end").value = "07:00", true)`)
	b.submit("/manage/do/preferences")
	b.expect("after saving", "Your preferences are saved.")
	sub, _, err := e.store.Get(e.ctx, "m_prefs")
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Statuses) != 1 || sub.Statuses[0] != "resolved" || sub.MinPriority != "P2" || sub.Timezone != "Europe/Rome" {
		t.Fatalf("stored: statuses %v, priority %q, time zone %q", sub.Statuses, sub.MinPriority, sub.Timezone)
	}
	if q := sub.Endpoint("sms").QuietHours; q == nil || q.Start != "22:00" || q.End != "07:00" {
		t.Fatalf("quiet hours: %+v", q)
	}
	synced := func() {
		e.waitFor("the index to see the change", 5*time.Second, func() bool {
			rev, _ := e.d.Index().Revision("m_prefs")
			_, got, _ := e.store.Get(e.ctx, "m_prefs")
			return rev == got
		})
	}
	// Paused: a resolved P1 update reaches nobody; resumed: it does.
	b.submit("/manage/do/pause")
	b.expect("paused", "Every notification is paused.")
	synced()
	e.publish(event("INC-PA", 1, "resolved"))
	if n := e.targets("INC-PA", 1); n != 0 {
		t.Fatalf("a paused subscriber got the update on %d endpoints", n)
	}
	b.submit("/manage/do/pause")
	if strings.Contains(b.text(), "Every notification is paused.") {
		t.Fatal("still paused")
	}
	synced()
	e.publish(event("INC-PB", 1, "resolved"))
	if n := e.targets("INC-PB", 1); n != 2 {
		t.Fatalf("after resuming, the update went to %d endpoints, want 2", n)
	}
	// An added address: pending, its confirmation only.
	b.fill("add-email", "night@prefs.example")
	b.submit("/manage/do/add-email")
	b.expect("after adding", "night@prefs.example", "awaiting confirmation")
	link(t, e.waitMail("night@prefs.example", 1), "confirm")
	synced()
	e.publish(event("INC-PC", 1, "resolved"))
	if n := e.targets("INC-PC", 1); n != 2 {
		t.Fatalf("the update went to %d endpoints, want 2 (not the pending one)", n)
	}
	// Remove the SMS number.
	b.follow(`form[action="/manage/do/remove"]:has(input[name="endpoint"][value="sms"]) button[type=submit]`)
	b.expect("after removing", "Removed.")
	if sub, _, err := e.store.Get(e.ctx, "m_prefs"); err != nil || sub.Endpoint("sms") != nil || sub.Endpoint("mail") == nil {
		t.Fatalf("after removing the number: %+v %v", sub, err)
	}
}
