package portal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/channels/email"
	"github.com/heraldhq/herald/channels/outbox"
	"github.com/heraldhq/herald/channels/slack"
	"github.com/heraldhq/herald/channels/sms"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/internal/mailpittest"
	"github.com/heraldhq/herald/internal/natstest"
	"github.com/heraldhq/herald/links"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// clock is a test clock that starts at the real time and can be moved on.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Test Twilio credentials (Twilio's formats).
const (
	twilioSID   = "AC0123456789abcdef0123456789abcdef"
	twilioToken = "f3a9c1e07b5d4e2a9c8b7a6f5e4d3c2b"
)

// fakeTwilio is a local server shaped like Twilio's Messages API: it
// accepts form-encoded POSTs to /2010-04-01/Accounts/{sid}/Messages.json
// with basic authentication and keeps the texts.
type fakeTwilio struct {
	url  string
	mu   sync.Mutex
	sent []smsSent
}

type smsSent struct{ To, Body string }

func startTwilio(t *testing.T) *fakeTwilio {
	f := &fakeTwilio{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != twilioSID || pass != twilioToken {
			http.Error(w, `{"code":20003,"message":"Authenticate","status":401}`, http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+twilioSID+"/Messages.json" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.sent = append(f.sent, smsSent{To: r.PostForm.Get("To"), Body: r.PostForm.Get("Body")})
		n := len(f.sent)
		f.mu.Unlock()
		sid := fmt.Sprintf("SM%032x", n)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"sid": sid, "status": "queued", "to": r.PostForm.Get("To"),
			"body": r.PostForm.Get("Body"), "account_sid": twilioSID, "num_segments": "1"})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	f.url = "http://" + ln.Addr().String()
	return f
}

// texts returns the SMS sent to a number.
func (f *fakeTwilio) texts(to string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.sent {
		if s.To == to {
			out = append(out, s.Body)
		}
	}
	return out
}

var codePattern = regexp.MustCompile(`\b(\d{6})\b`)

// env is a running Herald with its public pages: an embedded JetStream
// server, a dispatcher sending email to Mailpit, SMS to a Twilio-shaped
// server and webhooks for real, and the portal on a local listener.
type env struct {
	t      *testing.T
	ctx    context.Context
	clock  *clock
	nc     *nats.Conn
	js     jetstream.JetStream
	d      *dispatcher.Dispatcher
	portal *Server
	url    string
	mail   *mailpittest.Server
	twilio *fakeTwilio
	logs   *channelstest.SyncBuffer
	store  *subscribers.Store
	// rules, webhook and outbox are what a second portal process needs,
	// and where the Slack messages are written.
	rules   subscribers.Rules
	webhook channels.Channel
	outbox  string
}

type envOpts struct {
	limits      Limits
	platformCap int64
	countries   []string
	codeTTL     time.Duration
	noMail      bool
	previousKey secret.Value
	key         secret.Value
}

const testKey = "portal test key, portal test key, portal test key"

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, ctx: ctx, clock: &clock{}, logs: &channelstest.SyncBuffer{}}
	e.nc, e.js = natstest.Connect(t)
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	catalog, _ := incident.NewCatalog(incident.DefaultComponents())
	renderer, err := templates.New(templates.Config{Components: catalog, PublicURL: e.url})
	if err != nil {
		t.Fatal(err)
	}
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	wh, err := webhook.New(webhook.Config{AllowHTTP: true, Allow: allow, Timeout: 5 * time.Second}) // real time: receivers check the timestamp
	if err != nil {
		t.Fatal(err)
	}
	chans := map[string]channels.Channel{channels.Webhook: wh}
	outDir := t.TempDir()
	e.outbox, e.webhook = outDir, wh
	for _, name := range []string{channels.Email, channels.Slack} {
		ob, err := outbox.New(outbox.Config{Dir: outDir, Channel: name})
		if err != nil {
			t.Fatal(err)
		}
		chans[name] = ob
	}
	if !o.noMail {
		e.mail = mailpittest.Start(t, mailpittest.Options{})
		ch, err := email.New(email.Config{Host: e.mail.Host, Port: e.mail.SMTPPort, TLS: email.TLSNone, Pool: 2,
			From: "Status <status@herald.example>", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ch.Close() })
		chans[channels.Email] = ch
	}
	e.twilio = startTwilio(t)
	smsCh, err := sms.New(sms.Config{AccountSID: twilioSID, AuthToken: twilioToken, From: "+33757000000", BaseURL: e.twilio.url, Rate: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	chans[channels.SMS] = smsCh
	policy := egress.Policy{Allow: allow}
	rules := subscribers.Rules{Components: catalog, AllowHTTPWebhooks: true, Phone: sms.Normalize, SMSCountries: o.countries,
		WebhookURL:   func(raw string) error { _, err := policy.CheckURL(raw, true); return err },
		SlackWebhook: func(raw string) error { return slack.CheckWebhookURL(raw, nil, false) }}
	e.rules = rules
	key := o.key
	if key == "" {
		key = testKey
	}
	sealer, err := links.New(links.Config{Key: key, PreviousKey: o.previousKey, BaseURL: e.url, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	smsCap, err := dispatcher.NewSMSCap(ctx, e.js, dispatcher.SMSCapConfig{Platform: o.platformCap, Now: e.clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	none := 0.0
	dcfg := dispatcher.Config{SecretKey: key, PublicURL: e.url, Logger: logger, Now: e.clock.Now, ShutdownTimeout: 5 * time.Second,
		Channels: map[string]dispatcher.ChannelConfig{}}
	for _, name := range channels.Names() {
		dcfg.Channels[name] = dispatcher.ChannelConfig{Retry: dispatcher.Backoff{Base: 200 * time.Millisecond, Max: time.Second, Min: 50 * time.Millisecond, Jitter: &none}}
	}
	e.d, err = dispatcher.New(ctx, dcfg, dispatcher.Deps{Conn: e.nc, Channels: chans, Renderer: renderer, Catalog: catalog,
		Rules: rules, Links: sealer, SMSCap: smsCap})
	if err != nil {
		t.Fatal(err)
	}
	e.store = e.d.Subscribers()
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		if err := e.d.Run(ctx); err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	}()
	e.portal, err = New(ctx, Config{PublicURL: e.url, Catalog: catalog, Rules: rules, Limits: o.limits, CodeTTL: o.codeTTL,
		Now: e.clock.Now, Logger: logger}, Deps{Dispatcher: e.d, JetStream: e.js, Webhook: wh})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.portal.Handler()}
	go func() { _ = srv.Serve(ln) }()
	portalDone := make(chan struct{})
	go func() {
		defer close(portalDone)
		if err := e.portal.Run(ctx); err != nil {
			t.Errorf("portal: %v", err)
		}
	}()
	e.waitFor("the dispatcher", 10*time.Second, e.d.Ready)
	t.Cleanup(func() {
		_ = srv.Close()
		cancel()
		<-runDone
		<-portalDone
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs.String())
		}
	})
	return e
}

// waitFor polls cond until it holds.
func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publish publishes an event and waits until it is fanned out.
func (e *env) publish(ev map[string]any) {
	e.t.Helper()
	data, _ := json.Marshal(ev)
	if _, err := dispatcher.PublishEvent(e.ctx, e.js, data, 0); err != nil {
		e.t.Fatal(err)
	}
	id, seq := ev["incident_id"].(string), int64(ev["sequence"].(int))
	e.waitFor("the fan-out of "+ev["id"].(string), 10*time.Second, func() bool {
		snap, err := e.d.Snapshot(e.ctx, id)
		return err == nil && snap != nil && snap.LatestSeq >= seq && !slices_any(snap.Updates, func(u dispatcher.UpdateState) bool { return u.Sequence == seq && u.State == "fanning_out" })
	})
}

// targets returns how many endpoints an update was fanned out to (the
// fan-out is over when publish returns).
func (e *env) targets(incidentID string, seq int64) int {
	e.t.Helper()
	snap, err := e.d.Snapshot(e.ctx, incidentID)
	if err != nil || snap == nil {
		e.t.Fatalf("snapshot of %s: %v", incidentID, err)
	}
	for _, u := range snap.Updates {
		if u.Sequence == seq {
			return u.Targets
		}
	}
	e.t.Fatalf("%s has no update %d", incidentID, seq)
	return 0
}

func slices_any[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

// event returns an incident update.
func event(incidentID string, seq int, status string, components ...string) map[string]any {
	if components == nil {
		components = []string{}
	}
	return map[string]any{
		"id": fmt.Sprintf("%s:%d", incidentID, seq), "incident_id": incidentID, "sequence": seq, "status": status, "priority": "P2",
		"components": components,
		"title":      map[string]string{"fr": "Incident " + incidentID + " (fr)", "en": "Incident " + incidentID + " (en)", "it": "Incidente " + incidentID + " (it)"},
		"body":       map[string]string{"fr": "Texte français de la mise à jour.", "en": "English text of the update.", "it": "Testo italiano dell'aggiornamento."},
	}
}

// mails returns the messages Mailpit received for an address.
func (e *env) mails(to string) []mailpittest.Summary {
	return e.mail.Search(e.t, "to:"+to)
}

// waitMail waits until an address received n messages and returns the
// last one.
func (e *env) waitMail(to string, n int) mailpittest.Message {
	e.t.Helper()
	var got []mailpittest.Summary
	e.waitFor(fmt.Sprintf("%d message(s) to %s", n, to), 20*time.Second, func() bool {
		got = e.mails(to)
		return len(got) >= n
	})
	if len(got) > n {
		e.t.Fatalf("%s received %d messages, want %d", to, len(got), n)
	}
	return e.mail.Message(e.t, got[0].ID) // newest first
}

var linkPattern = regexp.MustCompile(`https?://[^\s"<>]+/(confirm|manage|unsubscribe)/[A-Za-z0-9_-]+`)

// link returns the first link of a kind ("confirm", "manage") in a message.
func link(t *testing.T, m mailpittest.Message, kind string) string {
	t.Helper()
	for _, l := range linkPattern.FindAllString(m.Text, -1) {
		if strings.Contains(l, "/"+kind+"/") {
			return l
		}
	}
	t.Fatalf("no %s link in %q", kind, m.Text)
	return ""
}

// waitCode waits for the SMS code sent to a number.
func (e *env) waitCode(to string, n int) string {
	e.t.Helper()
	var texts []string
	e.waitFor("SMS to "+to, 20*time.Second, func() bool {
		texts = e.twilio.texts(to)
		return len(texts) >= n
	})
	m := codePattern.FindStringSubmatch(texts[n-1])
	if m == nil {
		e.t.Fatalf("no code in %q", texts[n-1])
	}
	return m[1]
}

// client is an HTTP client with cookies, as a browser without JavaScript.
type client struct {
	t    *testing.T
	http *http.Client
	base string
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: e.t, base: e.url, http: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}}
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get fetches a page.
func (c *client) get(path string) (int, string) {
	c.t.Helper()
	resp, err := c.http.Get(c.abs(path))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *client) abs(path string) string {
	if strings.HasPrefix(path, "http") {
		u, _ := url.Parse(path)
		if u.RawQuery != "" {
			return c.base + u.Path + "?" + u.RawQuery
		}
		return c.base + u.Path
	}
	return c.base + path
}

// post sends a form the way the page's form would, with the CSRF token of
// the page at from.
func (c *client) post(from, action string, form url.Values) (int, string) {
	c.t.Helper()
	_, page := c.get(from)
	if m := csrfPattern.FindStringSubmatch(page); m != nil && form.Get("csrf") == "" {
		form.Set("csrf", m[1])
	}
	return c.postRaw(action, form)
}

func (c *client) postRaw(action string, form url.Values) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.abs(action), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func requireChromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("HERALD_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("HERALD_REQUIRE_CHROMIUM") != "" {
		t.Fatal("Chromium is required (HERALD_REQUIRE_CHROMIUM) but not installed")
	}
	t.Skip("Chromium not installed")
	return ""
}
