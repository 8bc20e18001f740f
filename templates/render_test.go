package templates

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/templates/gsm7"
)

// corpusLocales are the subscriber tags rendered over the corpus: the
// supported languages, regional variants, and an unsupported one.
var corpusLocales = []string{"fr", "en", "it", "fr-BE", "it-CH", "en-GB", "de-DE"}

// TestCorpus renders every corpus update in every locale and channel and
// checks each message against the channel's limits and Herald's rules.
func TestCorpus(t *testing.T) {
	t.Parallel()
	events := loadCorpus(t)
	r := newTestRenderer(t, testConfig())
	for _, ev := range events {
		t.Run(ev.ID, func(t *testing.T) {
			t.Parallel()
			for _, loc := range corpusLocales {
				for _, ch := range allChannels {
					out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ch, testRecipient(t, loc))
					if err != nil {
						t.Fatalf("%s %s: %v", loc, ch, err)
					}
					checkRendered(t, r, ev, loc, ch, out)
				}
			}
		})
	}
}

// checkRendered checks one message.
func checkRendered(t *testing.T, r *Renderer, ev *incident.Event, loc, ch string, out *Rendered) {
	t.Helper()
	where := loc + " " + ch
	if out.Subject == "" || strings.ContainsAny(out.Subject, "\r\n") || !utf8.ValidString(out.Subject) {
		t.Errorf("%s: bad subject %q", where, out.Subject)
	}
	if out.Requested != loc || out.Confidence == "" || !contains(r.Locales(), out.Locale) {
		t.Errorf("%s: locale %q requested %q confidence %q", where, out.Locale, out.Requested, out.Confidence)
	}
	if loc == "de-DE" && (!out.Fallback || out.Confidence != "no") {
		t.Errorf("%s: unsupported locale not recorded as fallback", where)
	}
	switch ch {
	case ChannelEmail:
		checkEmail(t, where, out)
		checkLanguages(t, where, out, out.Text)
	case ChannelSMS:
		c := gsm7.Measure(out.Text)
		if c.Segments > DefaultSMSSegments || c.Segments != out.Segments || c.Encoding.String() != out.Encoding {
			t.Errorf("%s: SMS of %d segments (%s), reported %d (%s): %q", where, c.Segments, c.Encoding, out.Segments, out.Encoding, out.Text)
		}
		if !strings.HasSuffix(out.Text, "\nhttps://status.example.com") {
			t.Errorf("%s: SMS does not end with the whole link: %q", where, out.Text)
		}
		checkLanguages(t, where, out, out.Text)
	case ChannelSlack:
		checkSlack(t, where, out.Body)
		checkSlack(t, where+" parent", out.Parent)
		var m slackMessage
		_ = json.Unmarshal(out.Body, &m)
		var all []string
		for _, b := range m.Blocks {
			if b.Text != nil {
				all = append(all, b.Text.Text)
			}
		}
		checkLanguages(t, where, out, strings.Join(all, "\n"))
	case ChannelWebhook:
		if len(out.Body) >= WebhookMaxBytes {
			t.Errorf("%s: webhook payload of %d bytes", where, len(out.Body))
		}
		var p struct {
			Type      string `json:"type"`
			Timestamp string `json:"timestamp"`
			Data      struct {
				SchemaVersion int               `json:"schema_version"`
				EventID       string            `json:"event_id"`
				Locale        string            `json:"locale"`
				Body          map[string]string `json:"body"`
				Original      struct {
					Body incident.Text `json:"body"`
				} `json:"original"`
			} `json:"data"`
		}
		if err := json.Unmarshal(out.Body, &p); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if _, err := time.Parse(time.RFC3339, p.Timestamp); err != nil || p.Type != WebhookTypeUpdate ||
			p.Data.SchemaVersion != 1 || p.Data.EventID != ev.ID || p.Data.Locale != out.Frame || len(p.Data.Body) == 0 {
			t.Errorf("%s: payload %s", where, out.Body)
		}
		if p.Data.Original.Body.String() != ev.Body.String() {
			t.Errorf("%s: original body altered", where)
		}
		if out.ContentType != "application/json" {
			t.Errorf("%s: content type %q", where, out.ContentType)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkEmail(t *testing.T, where string, out *Rendered) {
	t.Helper()
	if out.Text == "" || out.HTML == "" {
		t.Fatalf("%s: empty part", where)
	}
	h := strings.ToLower(out.HTML)
	for _, bad := range []string{"<img", "<script", "<link", "<style", " src=", "url(", "@import", "<iframe", "xhrldx"} {
		if strings.Contains(h, bad) {
			t.Errorf("%s: HTML holds %q", where, bad)
		}
	}
	for _, m := range hrefAttr.FindAllStringSubmatch(h, -1) {
		if !strings.HasPrefix(m[1], "https://") {
			t.Errorf("%s: HTML links to %q", where, m[1])
		}
	}
	if !strings.HasPrefix(h, "<!doctype html>") || !strings.Contains(h, "<table role=\"presentation\"") {
		t.Errorf("%s: not a table layout", where)
	}
	for _, part := range []string{out.Text, out.HTML} {
		if !strings.Contains(part, "https://herald.example.com/unsubscribe/AbC123") || !strings.Contains(part, "Boulangerie Dupont") {
			t.Errorf("%s: personal values missing", where)
		}
		if strings.Contains(part, markPrefix) {
			t.Errorf("%s: placeholder left", where)
		}
	}
	want := map[string]string{
		"List-Unsubscribe":      "<https://herald.example.com/unsubscribe/AbC123>, <mailto:unsubscribe@example.com?subject=unsubscribe>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"List-Id":               "Incident notifications <incidents.herald.example.com>",
		"Auto-Submitted":        "auto-generated",
		"Content-Language":      (langPair{frame: out.Frame, text: out.Locale}).contentLanguage(),
	}
	for k, v := range want {
		if out.Headers[k] != v {
			t.Errorf("%s: header %s = %q, want %q", where, k, out.Headers[k], v)
		}
	}
	for k, v := range out.Headers {
		if strings.ContainsAny(k+v, "\r\n") {
			t.Errorf("%s: header %s has a line break", where, k)
		}
	}
}

func checkSlack(t *testing.T, where string, body []byte) {
	t.Helper()
	var m slackMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if m.Text == "" || utf8.RuneCountInString(m.Text) > slackMaxText || len(m.Blocks) == 0 || len(m.Blocks) > slackMaxBlocks {
		t.Errorf("%s: %d blocks, text of %d", where, len(m.Blocks), len(m.Text))
	}
	for i, b := range m.Blocks {
		switch b.Type {
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" || b.Text.Text == "" || utf8.RuneCountInString(b.Text.Text) > slackMaxHeaderText {
				t.Errorf("%s: block %d: bad header", where, i)
			}
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				t.Errorf("%s: block %d: empty section", where, i)
			}
			if b.Text != nil && (b.Text.Text == "" || utf8.RuneCountInString(b.Text.Text) > slackMaxSectionText) {
				t.Errorf("%s: block %d: section text of %d", where, i, utf8.RuneCountInString(b.Text.Text))
			}
			if len(b.Fields) > slackMaxFields {
				t.Errorf("%s: block %d: %d fields", where, i, len(b.Fields))
			}
			for _, f := range b.Fields {
				if utf8.RuneCountInString(f.Text) > slackMaxFieldText {
					t.Errorf("%s: block %d: field of %d", where, i, len(f.Text))
				}
			}
		case "context":
			if len(b.Elements) == 0 {
				t.Errorf("%s: block %d: empty context", where, i)
			}
		case "divider":
		default:
			t.Errorf("%s: block %d: type %q", where, i, b.Type)
		}
	}
}

// checkOneLanguage fails when a sentence of text reads as another language
// than lang.
// checkLanguages checks that a message is in its frame's language, but for
// the update's own text, which may be in another (out.Locale) when the
// update has none in the reader's.
func checkLanguages(t *testing.T, where string, out *Rendered, text string) {
	t.Helper()
	if out.Frame == "" {
		t.Errorf("%s: no frame language", where)
	}
	if out.Frame == out.Locale {
		checkOneLanguage(t, where, out.Locale, text)
		return
	}
	foreign := foreignSentences(text, out.Frame)
	if rest := foreignSentences(strings.Join(foreign, "\n\n"), out.Locale); len(rest) > 0 {
		t.Errorf("%s: message in %s and %s holds %d sentence(s) in a third language, first: %q", where, out.Frame, out.Locale, len(rest), rest[0])
	}
}

func checkOneLanguage(t *testing.T, where, lang, text string) {
	t.Helper()
	if foreign := foreignSentences(text, lang); len(foreign) > 0 {
		t.Errorf("%s: message in %s holds %d sentence(s) in another language, first: %q", where, lang, len(foreign), foreign[0])
	}
}

// TestChannelNames keeps the renderer's channel names in step with package
// channels.
func TestChannelNames(t *testing.T) {
	t.Parallel()
	if got := channels.Names(); strings.Join(got, ",") != strings.Join(allChannels, ",") {
		t.Fatalf("channels.Names() = %v, templates render %v", got, allChannels)
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, Config{})
	ev := loadCorpus(t)[0]
	if _, err := r.Render(Update{Event: ev}, "fax", Recipient{}); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("unknown channel: %v", err)
	}
	if _, err := r.Render(Update{}, ChannelEmail, Recipient{}); err == nil {
		t.Error("nil event accepted")
	}
	bad := *ev
	bad.Status = "exploded"
	_, err := r.Render(Update{Event: &bad}, ChannelEmail, Recipient{})
	var fe incident.FieldErrors
	if !errors.As(err, &fe) || fe[0].Field != "status" {
		t.Errorf("invalid event: %v", err)
	}
	if _, err := r.RenderNotice(Notice{Kind: "party"}, ChannelEmail, Recipient{}); !errors.Is(err, ErrUnknownNotice) {
		t.Errorf("unknown notice: %v", err)
	}
}

func TestConfigRejected(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Fallback: []string{"xx!"}},
		{Fallback: []string{"de"}},
		{SMSSegments: -1},
		{SMSSegments: 11},
		{MaxBodyRunes: 10},
		{CacheSize: -1},
		{PublicURL: "ftp://x"},
		{StatusPageURL: "javascript:x"},
		{ListID: "a\r\nBcc: x"},
		{UnsubscribeMailto: "Name <a@example.com>"},
		{Dir: "/nonexistent/templates"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestInjection checks that hostile text in an update or a recipient never
// breaks out: HTML escaped, no header injection, mrkdwn escaped, links
// restricted.
func TestInjection(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	ev := &incident.Event{ID: "X-1:1", IncidentID: "X-1", Sequence: 1, Status: incident.Investigating,
		Title: incident.PlainText("<script>alert(1)</script> & <b>bold</b> xHRLDxNAMEx"),
		Body:  incident.PlainText("Click [here](javascript:alert(1)) <img src=https://evil.example.com/p.png> <@U123> & <!channel>\r\nBcc: victim@example.com"),
		URL:   "https://status.example.com/incidents/X-1"}
	rc := Recipient{Locale: "en", Name: "Eve\r\nBcc: all@example.com <b>", UnsubscribeURL: "javascript:alert(1)", PreferencesURL: "https://ok.example.com/p?a=1&b=\"2\""}
	email, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelEmail, rc)
	if err != nil {
		t.Fatal(err)
	}
	h := email.HTML
	for _, bad := range []string{"<script", "<b>bold", "<img", "javascript:", "Eve\r\n", "<b>\n", "Bcc: all@example.com <b>"} {
		if strings.Contains(h, bad) {
			t.Errorf("HTML holds %q", bad)
		}
	}
	if !strings.Contains(h, "&lt;script&gt;") || !strings.Contains(h, "Eve Bcc: all@example.com &lt;b&gt;") {
		t.Errorf("HTML does not show the escaped text")
	}
	if strings.ContainsAny(email.Subject, "\r\n") || strings.Contains(email.Subject, markPrefix) {
		t.Errorf("subject %q", email.Subject)
	}
	if strings.Contains(email.Text, "javascript:") || strings.Contains(email.Text, "Eve\r") || strings.Contains(email.Text, "\r") {
		t.Errorf("text part unsafe:\n%s", email.Text)
	}
	if _, ok := email.Headers["List-Unsubscribe"]; ok && strings.Contains(email.Headers["List-Unsubscribe"], "javascript") {
		t.Errorf("List-Unsubscribe %q", email.Headers["List-Unsubscribe"])
	}
	if !strings.Contains(h, `href="https://ok.example.com/p?a=1&amp;b=&#34;2&#34;"`) && !strings.Contains(h, `href="https://ok.example.com/p?a=1&amp;b=&#34;2&#34;`) {
		if strings.Contains(h, "ok.example.com") {
			t.Errorf("preferences link not escaped")
		}
	}
	slack, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelSlack, rc)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{slack.Body, slack.Parent} {
		var m slackMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		texts := []string{m.Text}
		for _, b := range m.Blocks {
			for _, tx := range append(append([]slackText{}, b.Fields...), b.Elements...) {
				texts = append(texts, tx.Text)
			}
			if b.Text != nil && b.Text.Type == "mrkdwn" {
				texts = append(texts, b.Text.Text)
			}
		}
		// Only plain_text (shown as is) may hold < and >; in mrkdwn they
		// open links and mentions and must come escaped.
		for _, tx := range texts {
			for _, bad := range []string{"<@U123>", "<!channel>", "javascript:", "<script>", "<img"} {
				if strings.Contains(tx, bad) {
					t.Errorf("Slack mrkdwn holds %q: %q", bad, tx)
				}
			}
		}
	}
}

// TestCacheAndPersonalization checks that renderings are cached and that
// the recipient's values are applied after the cache.
func TestCacheAndPersonalization(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	ev := loadCorpus(t)[0]
	u := Update{Event: ev, AcceptedAt: acceptedAt}
	a := testRecipient(t, "fr-BE")
	b := testRecipient(t, "fr-FR")
	b.Name, b.UnsubscribeURL = "Café <Zoé> & fils", "https://herald.example.com/unsubscribe/Other"
	ra, err := r.Render(u, ChannelEmail, a)
	if err != nil {
		t.Fatal(err)
	}
	before := r.cache.Len()
	rb, err := r.Render(u, ChannelEmail, b)
	if err != nil {
		t.Fatal(err)
	}
	if r.cache.Len() != before {
		t.Errorf("second recipient of the same shape was not served from the cache")
	}
	if !strings.Contains(rb.HTML, "Café &lt;Zoé&gt; &amp; fils") || !strings.Contains(rb.Text, "Café <Zoé> & fils") ||
		!strings.Contains(rb.HTML, "/unsubscribe/Other") || strings.Contains(rb.HTML, "/unsubscribe/AbC123") || !strings.Contains(ra.HTML, "/unsubscribe/AbC123") {
		t.Errorf("recipient values not applied")
	}
	if ra.Requested != "fr-BE" || rb.Requested != "fr-FR" || ra.Confidence != "high" || rb.Confidence != "exact" {
		t.Errorf("per-recipient match not kept: %s/%s %s/%s", ra.Requested, ra.Confidence, rb.Requested, rb.Confidence)
	}
	if rb.Headers["List-Unsubscribe"] == ra.Headers["List-Unsubscribe"] {
		t.Errorf("headers shared between recipients")
	}
	// Without name and links: another shape, no empty greeting or link.
	c := Recipient{Locale: "fr"}
	rc, err := r.Render(u, ChannelEmail, c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rc.Text, "Bonjour,\n") || strings.Contains(rc.Text, "Se désabonner") || rc.Headers["List-Unsubscribe"] != "<mailto:unsubscribe@example.com?subject=unsubscribe>" {
		t.Errorf("anonymous recipient:\n%s\n%v", rc.Text, rc.Headers)
	}
	if _, ok := rc.Headers["List-Unsubscribe-Post"]; ok {
		t.Errorf("One-Click announced without an https link")
	}
	// Another time zone is another rendering.
	d := a
	d.Location = mustLocation(t, "America/Montreal")
	rd, err := r.Render(u, ChannelEmail, d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ra.Text, "03/05/2025 16h11 (CEST)") || !strings.Contains(rd.Text, "03/05/2025 10h11 (EDT)") {
		t.Errorf("time zones not applied:\n%s\n%s", ra.Text, rd.Text)
	}
	// A changed update with the same id is rendered again.
	ev2 := *ev
	ev2.Status = incident.Resolved
	r2, err := r.Render(Update{Event: &ev2, AcceptedAt: acceptedAt}, ChannelEmail, a)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Subject == ra.Subject {
		t.Errorf("changed update served from the cache")
	}
}

// TestConcurrentRender renders from many goroutines (run with -race).
func TestConcurrentRender(t *testing.T) {
	t.Parallel()
	events := loadCorpus(t)[:20]
	cfg := testConfig()
	cfg.CacheSize = 16 // force evictions
	r := newTestRenderer(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, ev := range events {
				loc := corpusLocales[(i+g)%len(corpusLocales)]
				ch := allChannels[(i*3+g)%len(allChannels)]
				if _, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ch, Recipient{Locale: loc, Name: fmt.Sprint(g)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestWebhookDeterministic(t *testing.T) {
	t.Parallel()
	events := loadCorpus(t)
	r1 := newTestRenderer(t, testConfig())
	r2 := newTestRenderer(t, testConfig())
	for _, ev := range events {
		for _, loc := range []string{"fr", "en", "it"} {
			a, err := r1.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelWebhook, Recipient{Locale: loc})
			if err != nil {
				t.Fatal(err)
			}
			b, err := r2.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelWebhook, Recipient{Locale: loc + "-CH", Location: mustLocation(t, "Asia/Tokyo")})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Body, b.Body) {
				t.Fatalf("%s %s: payload differs between renderers", ev.ID, loc)
			}
		}
	}
}

// TestWebhookSizeLimit renders an update far over the limit.
func TestWebhookSizeLimit(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	long := strings.Repeat("Une phrase assez longue avec des \"guillemets\" & <signes>. ", 2000)
	ev := &incident.Event{ID: "L-1:1", IncidentID: "L-1", Sequence: 1, Status: incident.Identified,
		Title: incident.LocalizedText(map[string]string{"fr": "Long", "en": "Long"}),
		Body:  incident.LocalizedText(map[string]string{"fr": long, "en": long}),
		URL:   "https://status.example.com/incidents/L-1"}
	out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelWebhook, Recipient{Locale: "fr"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Body) >= WebhookMaxBytes {
		t.Fatalf("payload of %d bytes", len(out.Body))
	}
	var p struct {
		Data struct {
			Truncated bool              `json:"truncated"`
			Body      map[string]string `json:"body"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out.Body, &p); err != nil {
		t.Fatal(err)
	}
	if !p.Data.Truncated || !strings.HasSuffix(p.Data.Body["fr"], "… https://status.example.com/incidents/L-1") {
		t.Fatalf("truncation not marked: %v", p.Data.Truncated)
	}
	if ev.Body.ByLocale["fr"] != long {
		t.Fatal("the event was modified")
	}
	// Email and Slack cut the body too, with a link.
	email, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelEmail, Recipient{Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	if utf8.RuneCountInString(email.Text) > DefaultMaxBodyRunes+2000 || !strings.Contains(email.Text, "Read it in full on the status page:\nhttps://status.example.com/incidents/L-1") {
		t.Errorf("email not truncated with a link (%d runes)", utf8.RuneCountInString(email.Text))
	}
	slack, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelSlack, Recipient{Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	checkSlack(t, "long slack", slack.Body)
	if !bytes.Contains(slack.Body, []byte("<https://status.example.com/incidents/L-1|Read the full update on the status page>")) {
		t.Errorf("slack not truncated with a link")
	}
}

// TestSMSBudget renders the corpus with budgets of 1 to 3 segments.
func TestSMSBudget(t *testing.T) {
	t.Parallel()
	events := loadCorpus(t)
	for _, budget := range []int{1, 3} {
		cfg := testConfig()
		cfg.SMSSegments = budget
		r := newTestRenderer(t, cfg)
		for _, ev := range events {
			for _, loc := range []string{"fr", "en", "it"} {
				out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelSMS, Recipient{Locale: loc})
				if err != nil {
					t.Fatal(err)
				}
				if c := gsm7.Measure(out.Text); c.Segments > budget || !strings.HasSuffix(out.Text, "https://status.example.com") {
					t.Fatalf("%s %s budget %d: %d segments: %q", ev.ID, loc, budget, c.Segments, out.Text)
				}
			}
		}
	}
	// Characters with no GSM-7 equivalent keep UCS-2, shortened to fit.
	r := newTestRenderer(t, testConfig())
	ev := &incident.Event{ID: "E-1:1", IncidentID: "E-1", Sequence: 1, Status: incident.Identified,
		Title: incident.LocalizedText(map[string]string{"fr": "Incident 🔥 paiements"}),
		Body:  incident.LocalizedText(map[string]string{"fr": strings.Repeat("Les paiements échouent toujours. ", 20)}),
		URL:   "https://status.example.com/incidents/E-1"}
	out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelSMS, Recipient{Locale: "fr"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Encoding != "UCS-2" || out.Segments != 2 || !strings.Contains(out.Text, "…\nhttps://status.example.com/incidents/E-1") {
		t.Errorf("UCS-2 SMS: %s %d %q", out.Encoding, out.Segments, out.Text)
	}
	// A link longer than the whole budget is dropped rather than cut.
	ev.URL = "https://status.example.com/" + strings.Repeat("x", 400)
	out, err = r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelSMS, Recipient{Locale: "fr"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.Text, "https://") || out.Segments > 2 {
		t.Errorf("overlong link: %q", out.Text)
	}
}

func TestSMSTransliteration(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	ev := &incident.Event{ID: "T-1:1", IncidentID: "T-1", Sequence: 1, Status: incident.Resolved,
		Title: incident.LocalizedText(map[string]string{"fr": "Fenêtre « maintenance »", "it": "È risolto"}),
		Body:  incident.LocalizedText(map[string]string{"fr": "L’incident est clos… Reçu.", "it": "L’incidente è chiuso."})}
	for _, tc := range []struct{ loc, want string }{
		{"fr", "Resolu : Fenetre \" maintenance \"\nL'incident est clos... Recu."},
		{"it", "Risolto: E' risolto\nL'incidente è chiuso."},
	} {
		out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelSMS, Recipient{Locale: tc.loc})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.Text, strings.Replace(tc.want, "Resolu", "Résolu", 1)) || out.Encoding != "GSM-7" {
			t.Errorf("%s: %s %q", tc.loc, out.Encoding, out.Text)
		}
	}
}

// TestLocalizedEvent renders an event with per-locale texts: no splitting,
// and the fallback chain for the missing language.
func TestLocalizedEvent(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	ev := &incident.Event{ID: "P-1:1", IncidentID: "P-1", Sequence: 1, Status: incident.Monitoring, Priority: incident.P2,
		Components: []string{"3ds", "ecommerce"},
		Title:      incident.LocalizedText(map[string]string{"fr": "Paiements 3-D Secure perturbés", "en-GB": "3-D Secure payments disrupted", "en": "3-D Secure payments disrupted (en)"}),
		Body:       incident.LocalizedText(map[string]string{"fr": "Un correctif est déployé. FR EN IT", "en": "A fix is deployed. FR EN IT"})}
	for _, tc := range []struct {
		loc, lang, title string
		fallback         bool
	}{
		{"fr-CH", "fr", "Paiements 3-D Secure perturbés", false},
		{"en-US", "en", "3-D Secure payments disrupted (en)", false},
		{"it-IT", "en", "3-D Secure payments disrupted (en)", true},
		{"de", "en", "3-D Secure payments disrupted (en)", true},
	} {
		out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelEmail, Recipient{Locale: tc.loc})
		if err != nil {
			t.Fatal(err)
		}
		if out.Locale != tc.lang || out.Fallback != tc.fallback || !strings.Contains(out.Subject, tc.title) ||
			!strings.Contains(out.Text, "FR EN IT") {
			t.Errorf("%s: %s fallback=%v subject %q", tc.loc, out.Locale, out.Fallback, out.Subject)
		}
		// The reader of a language Herald writes gets Herald's words in
		// it, and the note naming the text's language, in it too.
		if tc.loc == "it-IT" && (out.Frame != "it" || !strings.Contains(out.Text,
			"Questo aggiornamento non è stato pubblicato nella tua lingua. Ecco il testo originale, in inglese.")) {
			t.Errorf("%s: frame %s, no Italian fallback note:\n%s", tc.loc, out.Frame, out.Text)
		}
		if tc.loc == "de" && (out.Frame != "en" || !strings.Contains(out.Text, "This update was not published in your language.")) {
			t.Errorf("%s: frame %s, no English fallback note:\n%s", tc.loc, out.Frame, out.Text)
		}
	}
	// A body in the reader's language without a title in it: a title is
	// written from the catalog, the message stays in one language.
	ev.Body.ByLocale["it"] = "È stata applicata una correzione."
	out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelEmail, Recipient{Locale: "it"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Locale != "it" || out.Fallback || out.Subject != "[In monitoraggio] Incidente che interessa Autenticazione 3-D Secure e Pagamenti e-commerce" {
		t.Errorf("written title: %s %q", out.Locale, out.Subject)
	}
}

func TestNotice(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	n := Notice{Kind: NoticeEndpointDisabled, EndpointID: "e4", EndpointChannel: "webhook", Reason: "HTTP 410 Gone", At: acceptedAt}
	for _, tc := range []struct{ loc, subject, body string }{
		{"fr-FR", "Notifications suspendues pour votre point d’accès webhook e4", "le 03/05/2025 16h11 (CEST), pour la raison suivante : HTTP 410 Gone."},
		{"en", "Notifications stopped for your webhook endpoint e4", "on May 3, 2025, 4:11 PM (CEST), because: HTTP 410 Gone."},
		{"it-CH", "Notifiche sospese per il tuo endpoint webhook e4", "il 03/05/2025 16:11 (CEST), per il seguente motivo: HTTP 410 Gone."},
	} {
		rc := testRecipient(t, tc.loc)
		out, err := r.RenderNotice(n, ChannelEmail, rc)
		if err != nil {
			t.Fatal(err)
		}
		if out.Subject != tc.subject || !strings.Contains(out.Text, tc.body) || !strings.Contains(out.HTML, "Boulangerie Dupont") ||
			out.Headers["Feedback-ID"] != "notice-endpoint.disabled:herald" || out.Headers["List-Unsubscribe-Post"] == "" {
			t.Errorf("%s: %q\n%s\n%v", tc.loc, out.Subject, out.Text, out.Headers)
		}
		checkEmail(t, tc.loc+" notice", out)
		for _, ch := range []string{ChannelSMS, ChannelSlack, ChannelWebhook} {
			out, err := r.RenderNotice(n, ch, rc)
			if err != nil {
				t.Fatal(err)
			}
			switch ch {
			case ChannelSMS:
				if out.Segments > DefaultSMSSegments || !strings.Contains(out.Text, "e4") {
					t.Errorf("%s sms notice %q", tc.loc, out.Text)
				}
			case ChannelSlack:
				checkSlack(t, tc.loc+" slack notice", out.Body)
			case ChannelWebhook:
				if !bytes.HasPrefix(out.Body, []byte(`{"type":"endpoint.disabled","timestamp":"2025-05-03T14:11:00Z","data":{`)) {
					t.Errorf("webhook notice %s", out.Body)
				}
			}
		}
	}
}

func TestWriteFiles(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	ev := loadCorpus(t)[5]
	for _, tc := range []struct {
		channel string
		files   []string
	}{
		{ChannelEmail, []string{"message.html", "message.txt"}}, // herald preview adds message.eml
		{ChannelSMS, []string{"sms.txt"}},
		{ChannelSlack, []string{"slack.json", "slack-parent.json"}},
		{ChannelWebhook, []string{"webhook.json"}},
	} {
		out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, tc.channel, testRecipient(t, "it"))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "out")
		paths, err := out.WriteFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != len(tc.files) {
			t.Fatalf("%s: wrote %v", tc.channel, paths)
		}
		for i, p := range paths {
			data, err := os.ReadFile(p)
			if filepath.Base(p) != tc.files[i] || err != nil || len(data) == 0 {
				t.Fatalf("%s: %s %v", tc.channel, p, err)
			}
		}
	}
}

// TestFallbackFramedInReadersLanguage: an Italian reader of a French-only
// update gets everything Herald writes in Italian (greeting, labels,
// status, components, dates, footer, and the note naming French), the
// provider's text in French marked lang="fr", and Content-Language "it, fr".
func TestFallbackFramedInReadersLanguage(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	ev := corpusEvent(t, loadCorpus(t), "INC-6465033d:1") // French only
	out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelEmail, testRecipient(t, "it-IT"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Frame != "it" || out.Locale != "fr" || !out.Fallback || out.Headers["Content-Language"] != "it, fr" {
		t.Fatalf("frame %s, text %s, fallback %v, Content-Language %q", out.Frame, out.Locale, out.Fallback, out.Headers["Content-Language"])
	}
	for _, want := range []string{
		"Buongiorno Boulangerie Dupont,", "Stato: Causa identificata", "Servizi interessati: Pagamenti e-commerce",
		"Aggiornamento: 03/05/2025 16:11 (CEST)", "Questo aggiornamento non è stato pubblicato nella tua lingua. Ecco il testo originale, in francese.",
		"Nous avons identifié un incident", "Annulla l’iscrizione:",
	} {
		if !strings.Contains(out.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, out.Text)
		}
	}
	for _, want := range []string{`<html lang="it">`, `<h1 lang="fr"`, `<td lang="fr"`, "Ecco il testo originale, in francese."} {
		if !strings.Contains(out.HTML, want) {
			t.Errorf("HTML part lacks %q", want)
		}
	}
	if !strings.HasPrefix(out.Subject, "[Causa identificata] ") {
		t.Errorf("subject %q", out.Subject)
	}
	// Slack says it too, in Italian, above the French text.
	sl, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelSlack, testRecipient(t, "it-IT"))
	if err != nil {
		t.Fatal(err)
	}
	note := strings.Index(string(sl.Body), "Questo aggiornamento non è stato pubblicato nella tua lingua. Ecco il testo originale, in francese.")
	if sl.Frame != "it" || !sl.Fallback || note < 0 || note > strings.Index(string(sl.Body), "Nous avons identifié un incident") ||
		!strings.Contains(string(sl.Body), "Servizi interessati") {
		t.Errorf("Slack for an Italian reader of a French update:\n%s", sl.Body)
	}
	// A reader whose language the update carries gets no note, one
	// language, one lang attribute.
	out, err = r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelEmail, testRecipient(t, "fr-FR"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Frame != "fr" || out.Locale != "fr" || out.Fallback || out.Headers["Content-Language"] != "fr" ||
		strings.Contains(out.HTML, `<h1 lang=`) || strings.Contains(out.Text, "pas été publiée dans votre langue") {
		t.Errorf("French reader: frame %s, text %s, fallback %v, Content-Language %q", out.Frame, out.Locale, out.Fallback, out.Headers["Content-Language"])
	}
	sl, err = r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelSlack, testRecipient(t, "fr-FR"))
	if err != nil || strings.Contains(string(sl.Body), "pas été publiée dans votre langue") {
		t.Errorf("Slack for a French reader: %v\n%s", err, sl.Body)
	}
	// A reader of a language Herald has no catalog for shares frame and
	// text with the English reader of an English update, not the
	// message: theirs has the note.
	en := Update{Event: corpusEvent(t, loadCorpus(t), "INC-9f682075:1"), AcceptedAt: acceptedAt}
	const enNote = "This update was not published in your language."
	if sl, err = r.Render(en, ChannelSlack, testRecipient(t, "en-GB")); err != nil || sl.Fallback || strings.Contains(string(sl.Body), enNote) {
		t.Errorf("Slack for an English reader: %v\n%s", err, sl.Body)
	}
	if sl, err = r.Render(en, ChannelSlack, testRecipient(t, "de-DE")); err != nil || !sl.Fallback || sl.Frame != "en" || !strings.Contains(string(sl.Body), enNote) {
		t.Errorf("Slack for a German reader: %v\n%s", err, sl.Body)
	}
}

// TestSubjectNeutralizesEncodedWords: a MIME encoded-word in a title
// reached the email Subject raw, where mail readers decode it; its opening
// is broken so the reader shows the title as written.
func TestSubjectNeutralizesEncodedWords(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	ev := &incident.Event{ID: "MW-1:1", IncidentID: "MW-1", Sequence: 1, Status: incident.Investigating,
		Title: incident.LocalizedText(map[string]string{"en": "Outage =?utf-8?b?WW91ciBhY2NvdW50IGlzIGNsb3NlZA==?= and =?iso-8859-1?q?x?="}),
		Body:  incident.LocalizedText(map[string]string{"en": "We are investigating."})}
	for _, ch := range allChannels {
		out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ch, testRecipient(t, "en"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.Subject, "=?") || !strings.Contains(out.Subject, "WW91ciBhY2NvdW50IGlzIGNsb3NlZA==") {
			t.Errorf("%s subject %q", ch, out.Subject)
		}
	}
}
