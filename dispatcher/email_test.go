package dispatcher

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/email"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/internal/mailpittest"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

const (
	// testPublicURL is Herald's public base URL in these tests: the
	// unsubscribe links and the Twilio status callback live under it.
	testPublicURL = "https://herald.example"
	// testFrom is the sender of every email.
	testFrom = "Herald Status <status@herald.example>"
)

// testClock is a clock for Config.Now: the real time until Set freezes it
// at a chosen instant (quiet hours, TTLs), so that no test waits for hours.
type testClock struct {
	mu     sync.Mutex
	frozen time.Time
}

// Now returns the frozen instant, or the real time when none was set.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen.IsZero() {
		return time.Now()
	}
	return c.frozen
}

// Set freezes the clock at t; the zero time makes it real again.
func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = t
}

// Add moves the frozen clock by d.
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = c.frozen.Add(d)
}

// frozenAt returns a clock frozen at t.
func frozenAt(t time.Time) *testClock {
	c := &testClock{}
	c.Set(t)
	return c
}

// wallClock returns today's date (in loc) at hh:mm:ss in loc, plus days.
func wallClock(loc *time.Location, days, hh, mm, ss int) time.Time {
	y, m, d := time.Now().In(loc).Date()
	return time.Date(y, m, d+days, hh, mm, ss, 0, loc)
}

func mustLocation(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// noJitter is Config.Rand for tests that check when a deferred job comes
// back: quiet hours end exactly at the window's end.
func noJitter() float64 { return 0 }

// patientDeferrals lets a job held by quiet hours under a stopped clock
// come back (every second) far more often than a slow machine needs before
// the test moves the clock on: deferrals count towards MaxDeliver.
func patientDeferrals(c *Config, channel string) {
	cc := c.Channels[channel]
	cc.MaxDeliver = 600
	c.Channels[channel] = cc
}

// newEmailChannel returns the real email channel submitting to host:port
// in clear text (a local relay), closed when the test ends.
func newEmailChannel(t testing.TB, host string, port, pool int) *email.Channel {
	t.Helper()
	ch, err := email.New(email.Config{
		Host: host, Port: port, TLS: email.TLSNone, Pool: pool,
		From: testFrom, ReplyTo: "support@herald.example",
		DialTimeout: 30 * time.Second, SendTimeout: 30 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

// emailSubscriber returns a subscriber with one email endpoint per address,
// with ids "mail", "mail2", "mail3"...
func emailSubscriber(id, locale, tz, name string, addrs ...string) *subscribers.Subscriber {
	s := &subscribers.Subscriber{ID: id, Name: name, Locale: locale, Timezone: tz}
	for i, a := range addrs {
		epID := "mail"
		if i > 0 {
			epID += strconv.Itoa(i + 1)
		}
		s.Endpoints = append(s.Endpoints, subscribers.Endpoint{ID: epID, Channel: channels.Email, Address: a})
	}
	return s
}

// servePublic serves hooks (provider callbacks) by pattern, as herald serve
// mounts them on its public listener, on a loopback port.
func (b *testBundle) servePublic(hooks map[string]http.Handler) *httptest.Server {
	mux := http.NewServeMux()
	for pattern, h := range hooks {
		mux.Handle(pattern, h)
	}
	srv := httptest.NewServer(mux)
	b.t.Cleanup(srv.Close)
	return srv
}

// delivery returns the records of one delivery, oldest first.
func (b *testBundle) delivery(sub, deliveryID string) []Record {
	b.t.Helper()
	var out []Record
	for _, r := range b.records(sub) {
		if r.DeliveryID == deliveryID {
			out = append(out, r)
		}
	}
	return out
}

// lastOutcome returns the outcome of a delivery's latest record, or "".
func (b *testBundle) lastOutcome(sub, deliveryID string) Outcome {
	recs := b.delivery(sub, deliveryID)
	if len(recs) == 0 {
		return ""
	}
	return recs[len(recs)-1].Outcome
}

// outcomeList joins the outcomes of recs: "retry,retry,delivered".
func outcomeList(recs []Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, string(r.Outcome))
	}
	return strings.Join(s, ",")
}

// outboxFiles returns the finished files under dir (the outbox writes a
// temporary dot-file first and renames it into place).
func outboxFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !strings.HasPrefix(info.Name(), ".") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// renderFor renders a corpus update as the dispatcher does for sub's
// endpoint, for comparing what was received with what was meant.
func (b *testBundle) renderFor(ev string, channel string, sub *subscribers.Subscriber) *templates.Rendered {
	b.t.Helper()
	e, err := incident.Decode([]byte(ev), 0)
	if err != nil {
		b.t.Fatal(err)
	}
	r, err := b.d.renderer.Render(templates.Update{Event: e, AcceptedAt: time.Now()}, channel,
		templates.Recipient{Locale: sub.Locale, Location: b.d.location(sub.Timezone), Name: sub.Name, UnsubscribeURL: testPublicURL + "/unsubscribe/x"})
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

// noAddressIn fails t when a delivery record holds one of addrs, whatever
// its case: the delivery log names endpoints by id only.
func noAddressIn(t testing.TB, recs []Record, addrs ...string) {
	t.Helper()
	for _, r := range recs {
		data, _ := json.Marshal(r)
		for _, a := range addrs {
			if strings.Contains(strings.ToLower(string(data)), strings.ToLower(a)) {
				t.Errorf("a delivery record holds the address %s: %s", a, data)
			}
		}
	}
}

// sevenBit reports whether raw holds only 7-bit bytes: every non-ASCII
// character travelled in a transfer or header encoding.
func sevenBit(raw []byte) bool {
	for _, c := range raw {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// unfoldedHeader returns the value of header name in a raw message, its
// folded lines joined.
func unfoldedHeader(t testing.TB, raw []byte, name string) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("raw message: %v", err)
	}
	return m.Header.Get(name)
}

// TestEmailEndToEndMailpit: a real multilingual corpus update reaches a
// French and an Italian merchant through the real email channel and a real
// SMTP server (Mailpit), once per endpoint and to no one else, with the
// headers a mailbox provider expects, both parts, and every accent intact.
func TestEmailEndToEndMailpit(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t, mailpittest.Options{})
	b := setup(t, bundleOpts{
		cfg:       func(c *Config) { c.PublicURL = testPublicURL },
		templates: func(c *templates.Config) { c.UnsubscribeMailto = "unsubscribe@herald.example" },
		channels:  map[string]channels.Channel{channels.Email: newEmailChannel(t, mp.Host, mp.SMTPPort, 2)},
	})
	fr := emailSubscriber("m_dupont", "fr-FR", "Europe/Paris", "Boulangerie Dupont", "ops@dupont.example")
	it := emailSubscriber("m_trattoria", "it-IT", "Europe/Rome", "Trattoria Città", "ops@trattoria.example")
	other := emailSubscriber("m_3ds", "fr-FR", "Europe/Paris", "Autre", "ops@3ds.example")
	other.Components = []string{"3ds"}
	for _, s := range []*subscribers.Subscriber{fr, it, other} {
		b.putSubscriber(s)
	}

	type want struct {
		sub      *subscribers.Subscriber
		addr     string
		lang     string
		title    string   // the title in the subscriber's language
		text     []string // excerpts of the text part
		html     []string // excerpts of the HTML part
		foreign  []string // other languages' text, which must not show
		feedback string
	}
	for _, up := range []struct {
		id    string
		wants []want
	}{
		{"TSR-1723:1", []want{
			{fr, "ops@dupont.example", "fr", "Perturbations paiement Oney",
				[]string{"Bonjour Boulangerie Dupont,", "Nous avons été informés d'un incident", "les transactions déjà refusées ne pourront plus être validées malgré un financement accepté",
					"Mise à jour", "Responsabilité", "Externe", "Se désabonner"},
				[]string{"Nous avons été informés d'un incident", "déjà refusées", "Référence", "Se désabonner</a>"},
				[]string{"We have been informed", "Siamo stati informati", "Oney payment disruptions"}, "TSR-1723:incident-monitoring:herald"},
			{it, "ops@trattoria.example", "it", "Perturbazioni pagamenti Oney",
				[]string{"Buongiorno Trattoria Città,", "È stata applicata una correzione", "la mattina di lunedì 5 maggio",
					"le transazioni già rifiutate non potranno più essere validate, anche se il finanziamento è stato approvato", "Responsabilità", "perché sei iscritto"},
				[]string{"È stata applicata una correzione", "già rifiutate non potranno più essere validate", "lunedì 5 maggio"},
				[]string{"We have been informed", "Nous avons été informés", "Oney payment disruptions"}, "TSR-1723:incident-monitoring:herald"},
		}},
		// The second update's French subject carries an accent
		// ("[Résolu]"): it travels RFC 2047-encoded and comes back intact.
		{"TSR-1723:2", []want{
			{fr, "ops@dupont.example", "fr", "Perturbations paiement Oney",
				[]string{"Les dossiers liés à des transactions refusées ont été annulés"}, []string{"ont été annulés"},
				[]string{"Financing applications linked"}, "TSR-1723:incident-resolved:herald"},
			{it, "ops@trattoria.example", "it", "Perturbazioni pagamenti Oney",
				[]string{"Le pratiche collegate a transazioni rifiutate sono state annullate"}, []string{"sono state annullate"},
				[]string{"Financing applications linked"}, "TSR-1723:incident-resolved:herald"},
		}},
	} {
		ev := corpusEvent(t, up.id)
		sent := time.Now()
		b.publish(ev)
		b.waitFor(up.id+" delivered to both", 30*time.Second, func() bool {
			return b.lastOutcome(fr.ID, DeliveryID(up.id, fr.ID, "mail")) == Delivered &&
				b.lastOutcome(it.ID, DeliveryID(up.id, it.ID, "mail")) == Delivered
		})
		for _, w := range up.wants {
			id := DeliveryID(up.id, w.sub.ID, "mail")
			recs := b.delivery(w.sub.ID, id)
			if len(recs) != 1 || recs[0].Status != 250 || recs[0].Locale != w.lang || recs[0].ProviderID == "" {
				t.Fatalf("%s %s: records %+v, want one delivered record in %s with Mailpit's id", up.id, w.addr, recs, w.lang)
			}
			// Mailpit's answer named its id: the record leads to the
			// very message.
			m := mp.Message(t, recs[0].ProviderID)
			h := mp.Headers(t, m.ID)
			raw := mp.Raw(t, m.ID)
			rendered := b.renderFor(ev, channels.Email, w.sub)

			if m.Subject != rendered.Subject || !strings.Contains(m.Subject, w.title) {
				t.Errorf("%s %s: Subject %q, want %q (with %q)", up.id, w.addr, m.Subject, rendered.Subject, w.title)
			}
			if m.From != (mailpittest.Address{Name: "Herald Status", Address: "status@herald.example"}) {
				t.Errorf("%s: From %+v", w.addr, m.From)
			}
			if len(m.To) != 1 || m.To[0] != (mailpittest.Address{Name: w.sub.Name, Address: w.addr}) {
				t.Errorf("%s: To %+v", w.addr, m.To)
			}
			if len(m.ReplyTo) != 1 || m.ReplyTo[0].Address != "support@herald.example" {
				t.Errorf("%s: Reply-To %+v", w.addr, m.ReplyTo)
			}
			if want := email.MessageID(id, "herald.example"); m.MessageID != want {
				t.Errorf("%s: Message-ID %q, want %q (from the delivery id)", w.addr, m.MessageID, want)
			}
			if d, ok := h.Get("Date"); !ok {
				t.Errorf("%s: Date %q", w.addr, h.Values("Date"))
			} else if at, err := mail.ParseDate(d); err != nil || at.Before(sent.Add(-time.Hour)) || at.After(time.Now().Add(time.Hour)) {
				t.Errorf("%s: Date %q (%v) is not the time of sending", w.addr, d, err)
			}
			for name, v := range map[string]string{
				"Auto-Submitted":        "auto-generated",
				"List-Id":               "Incident notifications <incidents.herald.example>",
				"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
				"Feedback-ID":           w.feedback,
				"Content-Language":      w.lang,
				"MIME-Version":          "1.0",
			} {
				if got, ok := h.Get(name); !ok || got != v {
					t.Errorf("%s: %s %q, want %q", w.addr, name, h.Values(name), v)
				}
			}
			if ct, _ := h.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative;") {
				t.Errorf("%s: Content-Type %q", w.addr, ct)
			}
			lu := m.ListUnsubscribe
			var https string
			for _, l := range lu.Links {
				if strings.HasPrefix(l, testPublicURL+"/unsubscribe/") {
					https = l
				}
			}
			if lu.Errors != "" || len(lu.Links) != 2 || https == "" ||
				!slices.Contains(lu.Links, "mailto:unsubscribe@herald.example?subject=unsubscribe") || lu.HeaderPost != "List-Unsubscribe=One-Click" {
				t.Errorf("%s: List-Unsubscribe as Mailpit reads it: %+v", w.addr, lu)
			}
			if tok := strings.TrimPrefix(https, testPublicURL+"/unsubscribe/"); strings.Contains(tok, w.sub.ID) || strings.Contains(tok, "mail") {
				t.Errorf("%s: the unsubscribe token shows its content: %q", w.addr, tok)
			}
			// Both parts, decoded by Mailpit, hold the accents as sent;
			// the wire held none of them raw.
			for _, s := range append(w.text, https) {
				if !strings.Contains(m.Text, s) {
					t.Errorf("%s: the text part lacks %q:\n%s", w.addr, s, m.Text)
				}
			}
			for _, s := range w.html {
				if !strings.Contains(m.HTML, s) {
					t.Errorf("%s: the HTML part lacks %q", w.addr, s)
				}
			}
			for _, s := range w.foreign {
				if strings.Contains(m.Text, s) || strings.Contains(m.HTML, s) || strings.Contains(m.Subject, s) {
					t.Errorf("%s: the message holds another language's %q", w.addr, s)
				}
			}
			if !sevenBit(raw) {
				t.Errorf("%s: the message went out with 8-bit bytes", w.addr)
			}
			if subj := unfoldedHeader(t, raw, "Subject"); strings.ContainsFunc(m.Subject, func(r rune) bool { return r > 0x7f }) &&
				!strings.Contains(strings.ToUpper(subj), "=?UTF-8?") {
				t.Errorf("%s: a non-ASCII subject travelled without RFC 2047 encoding: %q", w.addr, subj)
			}
		}
	}
	// The resolved update's French subject has its accent.
	if got := mp.Search(t, "subject:Résolu"); len(got) != 1 || got[0].To[0].Address != "ops@dupont.example" {
		t.Errorf("search for the accented subject: %+v", got)
	}
	// Exactly one message per endpoint and update, and none for the
	// subscriber of another component, once every job is done.
	b.settled()
	for addr, n := range map[string]int{"ops@dupont.example": 2, "ops@trattoria.example": 2, "ops@3ds.example": 0} {
		if got := mp.Search(t, "to:"+addr); len(got) != n {
			t.Errorf("%s received %d messages, want %d", addr, len(got), n)
		}
	}
	if total := mp.Total(t); total != 4 {
		t.Errorf("Mailpit holds %d messages, want 4", total)
	}
	if recs := b.records(other.ID); len(recs) != 0 {
		t.Errorf("the 3ds subscriber has delivery records: %+v", recs)
	}
}

// smtpServer is an SMTP server on loopback (github.com/emersion/go-smtp)
// that answers chosen recipients with chosen replies at RCPT TO and accepts
// every other message.
type smtpServer struct {
	host string
	port int

	mu      sync.Mutex
	answers map[string]func(n int) *smtp.SMTPError // by recipient; n counts its RCPT TO, from 1
	rcpts   map[string]int
	got     []smtpMessage
}

type smtpMessage struct {
	to   string
	data []byte
}

func newSMTPServer(t testing.TB) *smtpServer {
	t.Helper()
	s := &smtpServer{answers: map[string]func(int) *smtp.SMTPError{}, rcpts: map[string]int{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{s: s}, nil }))
	srv.Domain = "mx.dupont.example"
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.ErrorLog = smtpDiscard{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	s.host = "127.0.0.1"
	s.port = ln.Addr().(*net.TCPAddr).Port
	return s
}

// answer sets how RCPT TO addr is answered; nil accepts.
func (s *smtpServer) answer(addr string, fn func(n int) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[addr] = fn
}

// rcptCount is how many times addr was given in RCPT TO.
func (s *smtpServer) rcptCount(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts[addr]
}

// received counts the messages accepted for addr.
func (s *smtpServer) received(addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.got {
		if m.to == addr {
			n++
		}
	}
	return n
}

// smtpReply builds a reply with an enhanced status code.
func smtpReply(code int, enhanced smtp.EnhancedCode, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: text}
}

type smtpSession struct {
	s  *smtpServer
	to string
}

func (ss *smtpSession) Mail(string, *smtp.MailOptions) error { return nil }

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := ss.s
	s.mu.Lock()
	s.rcpts[to]++
	n, fn := s.rcpts[to], s.answers[to]
	s.mu.Unlock()
	if fn != nil {
		if e := fn(n); e != nil {
			return e
		}
	}
	ss.to = to
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.got = append(ss.s.got, smtpMessage{to: ss.to, data: data})
	n := len(ss.s.got)
	ss.s.mu.Unlock()
	return smtpReply(250, smtp.EnhancedCode{2, 0, 0}, "Ok: queued as Q"+strconv.Itoa(n))
}

func (ss *smtpSession) Reset()        { ss.to = "" }
func (ss *smtpSession) Logout() error { return nil }

type smtpDiscard struct{}

func (smtpDiscard) Printf(string, ...any) {}
func (smtpDiscard) Println(...any)        {}

// TestEmailSMTPOutcomes runs the SMTP answers that matter through the whole
// pipeline: 5.1.1 at RCPT TO suppresses the address (with the configured
// TTL and the reason) so that the next update is recorded, not sent, until
// an operator lifts it; 5.7.1 fails the message without suppressing; 451
// is retried on the schedule and delivered.
func TestEmailSMTPOutcomes(t *testing.T) {
	t.Parallel()
	const ttl = 48 * time.Hour
	mx := newSMTPServer(t)
	mx.answer("gone@dupont.example", func(int) *smtp.SMTPError {
		return smtpReply(550, smtp.EnhancedCode{5, 1, 1}, "<gone@dupont.example>: Recipient address rejected: User unknown")
	})
	mx.answer("blocked@dupont.example", func(int) *smtp.SMTPError {
		return smtpReply(550, smtp.EnhancedCode{5, 7, 1}, "Message rejected as spam")
	})
	mx.answer("busy@dupont.example", func(n int) *smtp.SMTPError {
		if n <= 2 {
			return smtpReply(451, smtp.EnhancedCode{4, 3, 0}, "Temporary local problem, try again later")
		}
		return nil
	})
	clock := &testClock{}
	none := 0.0
	b := setup(t, bundleOpts{
		cfg: func(c *Config) {
			c.PublicURL, c.SuppressionTTL, c.Now = testPublicURL, ttl, clock.Now
			c.Channels[channels.Email] = ChannelConfig{Retry: Backoff{Schedule: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}, Min: time.Millisecond, Jitter: &none}}
		},
		channels: map[string]channels.Channel{channels.Email: newEmailChannel(t, mx.host, mx.port, 2)},
	})
	for _, s := range []*subscribers.Subscriber{
		emailSubscriber("m_gone", "fr-FR", "Europe/Paris", "Dupont", "gone@dupont.example"),
		emailSubscriber("m_blocked", "fr-FR", "Europe/Paris", "Dupont", "blocked@dupont.example"),
		emailSubscriber("m_busy", "it-IT", "Europe/Rome", "Città", "busy@dupont.example"),
	} {
		b.putSubscriber(s)
	}
	dlv := func(sub string, seq int) string { return DeliveryID("INC-MX:"+strconv.Itoa(seq), sub, "mail") }

	b.publish(event("INC-MX", 1, "investigating"))
	b.waitFor("the three outcomes", 30*time.Second, func() bool {
		return b.lastOutcome("m_gone", dlv("m_gone", 1)) == Failed &&
			b.lastOutcome("m_blocked", dlv("m_blocked", 1)) == Failed &&
			b.lastOutcome("m_busy", dlv("m_busy", 1)) == Delivered
	})

	t.Run("5.1.1 suppresses", func(t *testing.T) {
		r := b.delivery("m_gone", dlv("m_gone", 1))
		if len(r) != 1 || r[0].Status != 550 || r[0].Code != "5.1.1" || r[0].Action != channels.SuppressAddress.String() {
			t.Fatalf("records %+v, want one failure 550 5.1.1 with suppress_address", r)
		}
		list, err := b.d.Suppressions().List(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Channel != channels.Email || list[0].Address != "gone@dupont.example" ||
			!strings.Contains(list[0].Reason, "5.1.1") || !strings.Contains(list[0].Reason, "User unknown") {
			t.Fatalf("suppressions %+v, want gone@ with the 5.1.1 reason", list)
		}
		st, err := b.d.topo.Suppressions.Status(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.TTL() != ttl {
			t.Errorf("suppressions bucket TTL %v, want the configured %v", st.TTL(), ttl)
		}
		// The suppression holds until its TTL, not after.
		now := time.Now()
		for _, c := range []struct {
			at   time.Time
			want bool
		}{{now, true}, {now.Add(ttl - time.Hour), true}, {now.Add(ttl + time.Hour), false}} {
			clock.Set(c.at)
			if got := b.d.Suppressions().Contains(channels.Email, "Gone@Dupont.example"); got != c.want {
				t.Errorf("suppressed at now+%v: %v, want %v", c.at.Sub(now).Round(time.Hour), got, c.want)
			}
		}
		clock.Set(time.Time{})
	})

	t.Run("5.7.1 fails without suppressing", func(t *testing.T) {
		r := b.delivery("m_blocked", dlv("m_blocked", 1))
		if len(r) != 1 || r[0].Status != 550 || r[0].Code != "5.7.1" || r[0].Action != "" {
			t.Fatalf("records %+v, want one failure 550 5.7.1 without action", r)
		}
		if b.d.Suppressions().Contains(channels.Email, "blocked@dupont.example") {
			t.Fatal("a policy block suppressed the address")
		}
	})

	t.Run("451 retried then delivered", func(t *testing.T) {
		r := b.delivery("m_busy", dlv("m_busy", 1))
		if got := outcomeList(r); got != "retry,retry,delivered" {
			t.Fatalf("outcomes %s, want retry,retry,delivered", got)
		}
		if r[0].Status != 451 || r[0].Code != "4.3.0" || r[0].NextAttemptAt == nil || r[2].Status != 250 {
			t.Errorf("records %+v", r)
		}
		if mx.rcptCount("busy@dupont.example") != 3 || mx.received("busy@dupont.example") != 1 {
			t.Errorf("busy@: %d RCPT TO, %d messages; want 3 and 1", mx.rcptCount("busy@dupont.example"), mx.received("busy@dupont.example"))
		}
	})

	// The next update: the suppressed address is skipped and recorded;
	// the blocked one is tried again (it was not suppressed).
	b.publish(event("INC-MX", 2, "identified"))
	b.waitFor("the second update's outcomes", 30*time.Second, func() bool {
		return b.lastOutcome("m_gone", dlv("m_gone", 2)) == Suppressed &&
			b.lastOutcome("m_blocked", dlv("m_blocked", 2)) == Failed &&
			b.lastOutcome("m_busy", dlv("m_busy", 2)) == Delivered
	})
	if n := mx.rcptCount("gone@dupont.example"); n != 1 {
		t.Fatalf("the suppressed address was tried %d times, want 1", n)
	}
	if n := mx.rcptCount("blocked@dupont.example"); n != 2 {
		t.Fatalf("the blocked address was tried %d times, want 2", n)
	}

	// An operator lifts the suppression as `herald suppressions rm` does:
	// its own handle on the bucket, outside the running dispatcher.
	ops, err := NewSuppressions(b.ctx, b.js, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ops.Remove(b.ctx, "gone@dupont.example"); err != nil || n != 1 {
		t.Fatalf("Remove = %d, %v; want 1", n, err)
	}
	b.waitFor("the dispatcher to see the removal", 10*time.Second, func() bool {
		return !b.d.Suppressions().Contains(channels.Email, "gone@dupont.example")
	})
	mx.answer("gone@dupont.example", nil) // the mailbox exists again
	b.publish(event("INC-MX", 3, "resolved"))
	b.waitFor("the third update delivered to the lifted address", 30*time.Second, func() bool {
		return b.lastOutcome("m_gone", dlv("m_gone", 3)) == Delivered
	})
	if got := outcomeList(b.records("m_gone")); got != "failed,suppressed,delivered" {
		t.Fatalf("m_gone's log: %s", got)
	}
	// The server echoed the recipient in its refusals; the delivery log
	// keeps the refusal and not the address.
	if r := b.delivery("m_gone", dlv("m_gone", 1)); !strings.Contains(r[0].Reason, "<[address]>: Recipient address rejected: User unknown") {
		t.Errorf("reason %q", r[0].Reason)
	}
	for _, s := range []string{"gone", "blocked", "busy"} {
		noAddressIn(t, b.records("m_"+s), s+"@dupont.example")
	}
	if mx.received("gone@dupont.example") != 1 {
		t.Fatalf("gone@ received %d messages, want 1", mx.received("gone@dupont.example"))
	}
}
