package email

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/internal/dkimtest"
	"github.com/heraldhq/herald/internal/mailpittest"
	"github.com/heraldhq/herald/secret"
)

// mailpit is a Mailpit server (package mailpittest) on loopback ports,
// stopped when its test ends.
type mailpit struct {
	*mailpittest.Server
	host     string
	smtpPort int
	// stop stops Mailpit (again: harmless).
	stop func()
}

// mailpitOptions are extra Mailpit settings.
type mailpitOptions struct {
	// tls serves STARTTLS (implicit: TLS from the start) with the test
	// CA's certificate.
	tls, implicit bool
	// user and pass require SMTP AUTH.
	user, pass string
}

// startMailpit starts Mailpit, installing it first if needed. It skips the
// test when Mailpit cannot be had, unless HERALD_REQUIRE_MAILPIT is set.
func startMailpit(t testing.TB, o mailpitOptions) *mailpit {
	t.Helper()
	opts := mailpittest.Options{Username: o.user, Password: o.pass}
	if o.tls {
		ca := testTLS(t)
		opts.CertPEM, opts.KeyPEM, opts.Implicit = ca.certPEM, ca.keyPEM, o.implicit
	}
	s := mailpittest.Start(t, opts)
	return &mailpit{Server: s, host: s.Host, smtpPort: s.SMTPPort, stop: s.Stop}
}

// config returns a channel configuration for m.
func (m *mailpit) config() Config {
	return Config{
		Host:       m.host,
		Port:       m.smtpPort,
		TLS:        TLSNone,
		From:       "Herald Status <status@herald.example>",
		ReplyTo:    "support@herald.example",
		ListID:     "Herald status notifications <status.herald.example>",
		FeedbackID: "herald",
	}
}

func (m *mailpit) get(t testing.TB, path string, v any) {
	t.Helper()
	m.Fetch(t, path, v)
}

// mpAddress and mpMessage are Mailpit's answers as package mailpittest
// reads them; mpList is the part of a message list the tests read.
type (
	mpAddress = mailpittest.Address
	mpMessage = mailpittest.Message
)

type mpList struct {
	Total    int `json:"total"`
	Messages []struct {
		ID, MessageID, Subject string
	} `json:"messages"`
}

// message returns the message Mailpit stored under id, and its headers.
func (m *mailpit) message(t testing.TB, id string) (mpMessage, map[string][]string) {
	t.Helper()
	return m.Message(t, id), m.Headers(t, id)
}

func italianMessage() *channels.Message {
	return &channels.Message{
		ID:         "dlv_it_7d0c2b9e41a35f68",
		Kind:       "incident.update",
		IncidentID: "TSR-1723",
		Sequence:   1,
		Status:     "monitoring",
		Locale:     "it",
		Subject:    "[Monitoraggio] Perturbazioni pagamenti Oney: perché è già in corso — «città»",
		Text:       "Siamo stati informati di un incidente che ha interessato diverse pratiche di finanziamento Oney aperte tra sabato 3 maggio e la mattina di lunedì 5 maggio. Le transazioni già rifiutate non potranno più essere validate, anche se il finanziamento è stato approvato.\n",
		HTML:       "<p>Siamo stati informati di un incidente che ha interessato diverse pratiche di finanziamento Oney.</p><p>Le transazioni già rifiutate non potranno più essere validate, anche se il finanziamento è stato approvato.</p>",
		Headers: map[string]string{
			"List-Unsubscribe":      "<https://herald.example/u/it-token>, <mailto:unsubscribe@herald.example?subject=it-token>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
		Attempt: 1,
	}
}

// TestMailpitMessage sends French and Italian notifications to Mailpit and
// reads them back through its API: headers, both parts, accents.
func TestMailpitMessage(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t, mailpitOptions{})
	ch := newChannel(t, mp.config())
	for _, tc := range []struct {
		name string
		ep   channels.Endpoint
		msg  *channels.Message
		text []string // excerpts of the text part
		html []string // excerpts of the HTML part
		// feedback is the Feedback-ID the channel derives.
		feedback string
	}{
		{"french", dupont(), frenchMessage(),
			[]string{"Un correctif a été déployé.", "Se désabonner : https://herald.example/u/abc"},
			[]string{"<p>Un correctif a été déployé. Nous surveillons les transactions.</p>"},
			"TSR-1610:incident-monitoring:herald"},
		{"italian", channels.Endpoint{Address: "ops@trattoria.example", Name: "Trattoria Città"}, italianMessage(),
			[]string{"la mattina di lunedì 5 maggio", "il finanziamento è stato approvato."},
			[]string{"<p>Le transazioni già rifiutate non potranno più essere validate"},
			"TSR-1723:incident-monitoring:herald"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ch.Send(t.Context(), tc.ep, tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != 250 || r.ProviderID == "" {
				t.Fatalf("receipt %+v, want 250 and Mailpit's id", r)
			}
			got, h := mp.message(t, r.ProviderID)
			if got.Subject != tc.msg.Subject {
				t.Errorf("Subject %q, want %q", got.Subject, tc.msg.Subject)
			}
			if got.From != (mpAddress{Name: "Herald Status", Address: "status@herald.example"}) {
				t.Errorf("From %+v", got.From)
			}
			if len(got.To) != 1 || got.To[0] != (mpAddress{Name: tc.ep.Name, Address: tc.ep.Address}) {
				t.Errorf("To %+v, want %s <%s>", got.To, tc.ep.Name, tc.ep.Address)
			}
			if len(got.ReplyTo) != 1 || got.ReplyTo[0].Address != "support@herald.example" {
				t.Errorf("Reply-To %+v", got.ReplyTo)
			}
			if want := MessageID(tc.msg.ID, "herald.example"); got.MessageID != want {
				t.Errorf("Message-ID %q, want %q", got.MessageID, want)
			}
			for _, s := range tc.text {
				if !strings.Contains(got.Text, s) {
					t.Errorf("the text part lacks %q: %q", s, got.Text)
				}
			}
			for _, s := range tc.html {
				if !strings.Contains(got.HTML, s) {
					t.Errorf("the HTML part lacks %q: %q", s, got.HTML)
				}
			}
			lu := got.ListUnsubscribe
			prefixed := func(p string) func(string) bool { return func(s string) bool { return strings.HasPrefix(s, p) } }
			if lu.HeaderPost != "List-Unsubscribe=One-Click" || lu.Errors != "" || len(lu.Links) != 2 ||
				!slices.ContainsFunc(lu.Links, prefixed("https://herald.example/u/")) || !slices.ContainsFunc(lu.Links, prefixed("mailto:")) {
				t.Errorf("List-Unsubscribe as Mailpit reads it: %+v", lu)
			}
			for name, want := range map[string]string{
				"Auto-Submitted":        "auto-generated",
				"List-Id":               "Herald status notifications <status.herald.example>",
				"Feedback-Id":           tc.feedback,
				"Content-Language":      tc.msg.Locale,
				"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
				"List-Unsubscribe":      tc.msg.Headers["List-Unsubscribe"],
				"Mime-Version":          "1.0",
			} {
				if v := header(h, name); len(v) != 1 || v[0] != want {
					t.Errorf("%s: %q, want %q", name, v, want)
				}
			}
			if ct := header(h, "Content-Type"); len(ct) != 1 || !strings.HasPrefix(ct[0], "multipart/alternative;") {
				t.Errorf("Content-Type %q", ct)
			}
			if d := header(h, "Date"); len(d) != 1 {
				t.Errorf("Date %q", d)
			} else if _, err := time.Parse(time.RFC1123Z, d[0]); err != nil {
				t.Errorf("Date %q: %v", d[0], err)
			}
		})
	}
}

// header returns the values of the header name in h, whatever the case of
// its key.
func header(h map[string][]string, name string) []string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// TestMailpitResendKeepsMessageID sends the same delivery twice, as a retry
// does: Mailpit stores two messages with one Message-ID; another delivery
// gets another.
func TestMailpitResendKeepsMessageID(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t, mailpitOptions{})
	ch := newChannel(t, mp.config())
	msg := frenchMessage()
	first, err := ch.Send(t.Context(), dupont(), msg)
	if err != nil {
		t.Fatal(err)
	}
	retry := frenchMessage()
	retry.Attempt = 2
	second, err := ch.Send(t.Context(), dupont(), retry)
	if err != nil {
		t.Fatal(err)
	}
	other := frenchMessage()
	other.ID = "dlv_0a1b2c3d4e5f6789"
	third, err := ch.Send(t.Context(), dupont(), other)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := mp.message(t, first.ProviderID)
	b, _ := mp.message(t, second.ProviderID)
	c, _ := mp.message(t, third.ProviderID)
	if a.ID == b.ID {
		t.Fatalf("one Mailpit message for two sends: %s", a.ID)
	}
	if a.MessageID != b.MessageID || a.MessageID != "dlv_5c1f0e9a7b3d4e21@herald.example" {
		t.Errorf("Message-IDs %q and %q, want both dlv_5c1f0e9a7b3d4e21@herald.example", a.MessageID, b.MessageID)
	}
	if c.MessageID == a.MessageID {
		t.Errorf("another delivery has the same Message-ID %q", c.MessageID)
	}
	var list mpList
	mp.get(t, "/api/v1/messages", &list)
	n := 0
	for _, m := range list.Messages {
		if m.MessageID == a.MessageID {
			n++
		}
	}
	if list.Total != 3 || n != 2 {
		t.Errorf("Mailpit holds %d messages, %d with the retried Message-ID; want 3 and 2", list.Total, n)
	}
}

// TestMailpitAuth submits over STARTTLS and implicit TLS with AUTH PLAIN
// and LOGIN: Mailpit records the authenticated user; a wrong password is
// refused and does not show.
func TestMailpitAuth(t *testing.T) {
	t.Parallel()
	ca := testTLS(t)
	for _, implicit := range []bool{false, true} {
		mp := startMailpit(t, mailpitOptions{tls: true, implicit: implicit, user: "herald", pass: testPassword})
		mode := TLSStartTLS
		if implicit {
			mode = TLSImplicit
		}
		for _, auth := range []AuthMethod{AuthPlain, AuthLogin, AuthAuto} {
			cfg := mp.config()
			cfg.TLS, cfg.TLSConfig = mode, ca.clientConfig()
			cfg.Username, cfg.Password, cfg.Auth = "herald", secret.Value(testPassword), auth
			ch := newChannel(t, cfg)
			r, err := ch.Send(t.Context(), dupont(), frenchMessage())
			if err != nil {
				t.Errorf("%s %s: %v", mode, auth, err)
				continue
			}
			// Mailpit requires AUTH here, so the delivery proves it;
			// it records the user name of LOGIN only.
			if got, _ := mp.message(t, r.ProviderID); auth == AuthLogin && got.Username != "herald" {
				t.Errorf("%s %s: Mailpit saw user %q", mode, auth, got.Username)
			}
		}
		cfg := mp.config()
		cfg.TLS, cfg.TLSConfig = mode, ca.clientConfig()
		cfg.Username, cfg.Password = "herald", "wrong-"+testPassword
		_, err := newChannel(t, cfg).Send(t.Context(), dupont(), frenchMessage())
		if err == nil || channels.Classify(err).Permanent || strings.Contains(err.Error(), testPassword) {
			t.Errorf("%s with a wrong password: %v, want a retryable error without the password", mode, err)
		}
	}
}

// TestMailpitDKIM: the message as Mailpit received it verifies against the
// DNS record DNSRecord gives.
func TestMailpitDKIM(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t, mailpitOptions{})
	d := &DKIM{Domain: "herald.example", Selector: "herald2025", PrivateKey: secret.Value(rsaPEM(t, 2048))}
	cfg := mp.config()
	cfg.DKIM = d
	ch := newChannel(t, cfg)
	r, err := ch.Send(t.Context(), dupont(), frenchMessage())
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	mp.get(t, "/api/v1/message/"+url.PathEscape(r.ProviderID)+"/raw", &raw)
	vs := dkimtest.Verify(t, d, raw)
	if len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("DKIM verification of the received message: %+v", vs)
	}
	if !slices.ContainsFunc(vs[0].HeaderKeys, func(k string) bool { return strings.EqualFold(k, "List-Unsubscribe-Post") }) {
		t.Errorf("List-Unsubscribe-Post is not signed: %v", vs[0].HeaderKeys)
	}
}
