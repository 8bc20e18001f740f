package email

import (
	"bytes"
	"net/mail"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/internal/dkimtest"
	"github.com/heraldhq/herald/internal/golden"
	"github.com/heraldhq/herald/secret"
)

var testDate = time.Date(2025, 4, 10, 11, 43, 0, 0, time.FixedZone("CEST", 2*3600))

// frenchMessage is a notification as the templates render it in French.
func frenchMessage() *channels.Message {
	msg := channelstest.SampleMessage()
	msg.Subject = "[Surveillance] Double prélèvement sur les terminaux Nexo — « TSR-1610 »"
	msg.Text = "Bonjour Boulangerie Dupont,\n\nUn correctif a été déployé. Nous surveillons les transactions.\n\nSe désabonner : https://herald.example/u/abc\n"
	msg.HTML = "<p>Bonjour Boulangerie Dupont,</p>\n<p>Un correctif a été déployé. Nous surveillons les transactions.</p>\n"
	msg.Headers = map[string]string{
		"List-Unsubscribe":      "<https://herald.example/u/abc>, <mailto:unsubscribe@herald.example?subject=abc>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"x-herald-incident":     "TSR-1610",
	}
	return msg
}

func dupont() channels.Endpoint {
	return channels.Endpoint{SubscriberID: "m_1042", ID: "e1", Address: "ops@dupont.example", Name: "Boulangerie Dupont"}
}

func testRenderer(t testing.TB, mod func(*Config)) *Renderer {
	t.Helper()
	cfg := Config{
		From:       "Herald Status <status@herald.example>",
		ReplyTo:    "support@herald.example",
		ListID:     "Herald status notifications <status.herald.example>",
		FeedbackID: "herald",
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewRenderer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestComposeGolden(t *testing.T) {
	t.Parallel()
	env, err := testRenderer(t, nil).compose(dupont(), frenchMessage(), testDate)
	if err != nil {
		t.Fatal(err)
	}
	if env.from != "<status@herald.example>" || env.to != "<ops@dupont.example>" || env.utf8 {
		t.Errorf("envelope %q -> %q (utf8 %v)", env.from, env.to, env.utf8)
	}
	golden.Check(t, filepath.Join("testdata", "message.eml"), env.data)
}

func TestComposeHeaders(t *testing.T) {
	t.Parallel()
	c := testRenderer(t, nil)
	render := func(t *testing.T, ep channels.Endpoint, msg *channels.Message) string {
		t.Helper()
		env, err := c.compose(ep, msg, testDate)
		if err != nil {
			t.Fatal(err)
		}
		return string(env.data)
	}
	t.Run("message headers win over the configuration", func(t *testing.T) {
		msg := frenchMessage()
		msg.Headers["List-Id"] = "<dupont.status.herald.example>"
		msg.Headers["feedback-id"] = "TSR-1610:incident.update:herald"
		msg.Headers["Reply-To"] = "Support Dupont <support@dupont.example>"
		msg.Headers["Content-Language"] = "fr-FR"
		got := render(t, dupont(), msg)
		for _, want := range []string{
			"List-Id: <dupont.status.herald.example>\r\n",
			"Feedback-ID: TSR-1610:incident.update:herald\r\n",
			"Reply-To: \"Support Dupont\" <support@dupont.example>\r\n",
			"Content-Language: fr-FR\r\n",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("lacks %q:\n%s", want, got)
			}
		}
		if strings.Count(got, "List-Id:") != 1 || strings.Count(got, "Reply-To:") != 1 {
			t.Errorf("a header twice:\n%s", got)
		}
	})
	t.Run("text only", func(t *testing.T) {
		msg := frenchMessage()
		msg.HTML = ""
		got := render(t, dupont(), msg)
		if strings.Contains(got, "multipart") || !strings.Contains(got, "Content-Type: text/plain; charset=UTF-8") {
			t.Errorf("text-only message:\n%s", got)
		}
	})
	t.Run("HTML only", func(t *testing.T) {
		msg := frenchMessage()
		msg.Text = ""
		got := render(t, dupont(), msg)
		if strings.Contains(got, "multipart") || !strings.Contains(got, "Content-Type: text/html; charset=UTF-8") {
			t.Errorf("HTML-only message:\n%s", got)
		}
	})
	t.Run("no name, no locale, no kind", func(t *testing.T) {
		msg := frenchMessage()
		msg.Locale, msg.Kind, msg.IncidentID, msg.Status = "fr\nX", "", "", ""
		got := render(t, channels.Endpoint{Address: "ops@dupont.example"}, msg)
		for _, want := range []string{"To: <ops@dupont.example>\r\n", "Feedback-ID: herald\r\n"} {
			if !strings.Contains(got, want) {
				t.Errorf("lacks %q:\n%s", want, got)
			}
		}
		if strings.Contains(got, "Content-Language") {
			t.Errorf("an invalid locale became a header:\n%s", got)
		}
	})
	t.Run("accented name", func(t *testing.T) {
		got := render(t, channels.Endpoint{Address: "ops@trattoria.example", Name: "Trattoria Città"}, italianMessage())
		if !strings.Contains(got, "To: =?utf-8?q?Trattoria_Citt=C3=A0?= <ops@trattoria.example>\r\n") {
			t.Errorf("To header:\n%s", got)
		}
	})
	t.Run("a retry renders the same bytes", func(t *testing.T) {
		a, b := render(t, dupont(), frenchMessage()), render(t, dupont(), frenchMessage())
		if a != b {
			t.Error("two renderings of one delivery differ")
		}
	})
	t.Run("content holding the boundary", func(t *testing.T) {
		msg := frenchMessage()
		msg.Text += "\n--" + c.boundary(frenchMessage()) + "\n"
		got := render(t, dupont(), msg)
		if strings.Contains(got, "boundary="+c.boundary(frenchMessage())) {
			t.Error("the derived boundary was used although the content holds it")
		}
	})
}

func TestMessageID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ id, want string }{
		{"dlv_5c1f0e9a7b3d4e21", "dlv_5c1f0e9a7b3d4e21@herald.example"},
		{"a/b", "a%2Fb@herald.example"},
		{"a%2Fb", "a%252Fb@herald.example"},
		{"<x>@y", "%3Cx%3E%40y@herald.example"},
		{"é", "%C3%A9@herald.example"},
	} {
		if got := MessageID(tc.id, "herald.example"); got != tc.want {
			t.Errorf("MessageID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
	long := MessageID(strings.Repeat("x", 201), "herald.example")
	if !strings.HasPrefix(long, "sha256-") || len(long) != len("sha256-")+64+len("@herald.example") {
		t.Errorf("long id: %q", long)
	}
	if MessageID(strings.Repeat("x", 201), "h") == MessageID(strings.Repeat("x", 202), "h") {
		t.Error("two long ids share a Message-ID")
	}
}

// TestComposeTemplateHeaders sends the header set package templates
// renders for an incident update: every header is accepted and written
// once, with the template's value.
func TestComposeTemplateHeaders(t *testing.T) {
	t.Parallel()
	msg := frenchMessage()
	msg.Headers = map[string]string{
		"Auto-Submitted":           "auto-generated",
		"X-Auto-Response-Suppress": "OOF, AutoReply",
		"Content-Language":         "fr",
		"Feedback-ID":              "TSR-1610:incident.update:herald",
		"List-Id":                  "Herald status <status.herald.example>",
		"List-Unsubscribe-Post":    "List-Unsubscribe=One-Click",
		"List-Unsubscribe":         "<https://herald.example/unsubscribe/v1.abc>, <mailto:unsubscribe@herald.example?subject=unsubscribe>",
	}
	env, err := testRenderer(t, nil).compose(dupont(), msg, testDate)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := mail.ReadMessage(bytes.NewReader(env.data))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range msg.Headers {
		if got := parsed.Header[textproto.CanonicalMIMEHeaderKey(k)]; len(got) != 1 || got[0] != v {
			t.Errorf("%s: %q, want %q once", k, got, v)
		}
	}
}

// TestFeedbackID checks the channel's default Feedback-ID, the format
// package templates writes: "[<incident id>:]<mail type>:<sender>".
func TestFeedbackID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		msg  channels.Message
		want string
	}{
		{"incident update", channels.Message{Kind: "incident.update", IncidentID: "TSR-1610", Status: "monitoring"},
			"TSR-1610:incident-monitoring:herald"},
		{"update without status", channels.Message{Kind: "incident.update", IncidentID: "TSR-1610"}, "TSR-1610:incident:herald"},
		{"update without incident", channels.Message{Kind: "incident.update", Status: "resolved"}, "incident-resolved:herald"},
		{"service message", channels.Message{Kind: "endpoint.disabled"}, "notice-endpoint.disabled:herald"},
		{"no kind", channels.Message{}, "herald"},
		{"separators dropped", channels.Message{Kind: "incident.update", IncidentID: "a:b c", Status: "re\tsolved:"},
			"abc:incident-resolved:herald"},
	} {
		if got := feedbackID(&tc.msg, "herald"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestNewRenderer checks that a renderer needs only the fields that shape
// a message, and checks them as New does.
func TestNewRenderer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"From alone", Config{From: "status@herald.example"}, true},
		{"everything but the server", Config{From: "Herald <status@herald.example>", ReplyTo: "support@herald.example",
			ListID: "status.herald.example", FeedbackID: "herald",
			DKIM: &DKIM{Domain: "herald.example", Selector: "s1", PrivateKey: secret.Value(dkimtest.Ed25519PEM)}}, true},
		{"no From", Config{}, false},
		{"invalid Reply-To", Config{From: "status@herald.example", ReplyTo: "support"}, false},
		{"List-Id with a newline", Config{From: "status@herald.example", ListID: "a\nb"}, false},
		{"FeedbackID with a colon", Config{From: "status@herald.example", FeedbackID: "acme:herald"}, false},
		{"DKIM not aligned", Config{From: "status@herald.example",
			DKIM: &DKIM{Domain: "other.example", Selector: "s1", PrivateKey: secret.Value(dkimtest.Ed25519PEM)}}, false},
	} {
		if _, err := NewRenderer(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// TestRenderIsWhatSendSubmits checks that Render gives the very bytes the
// channel submits for the same endpoint, message and date.
func TestRenderIsWhatSendSubmits(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	cfg := plainConfig(ts)
	cfg.ReplyTo = "support@herald.example"
	cfg.Now = func() time.Time { return testDate }
	ch := newChannel(t, cfg)
	r, err := NewRenderer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ep   channels.Endpoint
		msg  *channels.Message
	}{
		{"french", dupont(), frenchMessage()},
		{"italian", channels.Endpoint{Address: "ops@trattoria.example", Name: "Trattoria Città"}, italianMessage()},
	} {
		if _, err := ch.Send(t.Context(), tc.ep, tc.msg); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := ts.messages()
		want, err := r.Render(tc.ep, tc.msg, testDate)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if sent := got[len(got)-1].data; !bytes.Equal(sent, want) {
			t.Errorf("%s: Render differs from what Send submitted:\n--- sent\n%s\n--- rendered\n%s", tc.name, sent, want)
		}
	}
	for _, tc := range []struct {
		name string
		msg  *channels.Message
	}{
		{"nil message", nil},
		{"no delivery id", &channels.Message{Text: "x"}},
		{"reserved header", &channels.Message{ID: "d", Text: "x", Headers: map[string]string{"Subject": "x"}}},
	} {
		if _, err := r.Render(dupont(), tc.msg, testDate); err == nil || !strings.HasPrefix(err.Error(), "email: ") {
			t.Errorf("%s: err = %v, want an email: error", tc.name, err)
		}
	}
}
