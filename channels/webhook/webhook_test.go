package webhook

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/secret"
)

const (
	// testSecret is a valid secret (24 random bytes).
	testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	// otherSecret is another valid secret (32 bytes), for rotation.
	otherSecret = "whsec_3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho="
	queryToken  = "tok_9f8e7d6c5b4a3210"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
	err    error // the library's verdict on the signature
}

// receiver is a webhook receiver on 127.0.0.1 that verifies signatures
// with the Standard Webhooks library, records requests and connections, and
// answers with status (200 by default).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []request
	conns  atomic.Int64
	status atomic.Int64
	verify func(body []byte, h http.Header) error
}

func newReceiver(t *testing.T, secrets ...string) *receiver {
	t.Helper()
	var whs []*standardwebhooks.Webhook
	for _, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		whs = append(whs, wh)
	}
	r := &receiver{}
	r.verify = func(body []byte, h http.Header) error {
		var err error
		for _, wh := range whs {
			if err = wh.Verify(body, h); err == nil {
				return nil
			}
		}
		return err
	}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, request{header: req.Header.Clone(), body: body, err: r.verify(body, req.Header)})
		r.mu.Unlock()
		if s := r.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		_, _ = io.WriteString(w, "thanks")
	}))
	r.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	r.Start()
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

func newChannel(t testing.TB, cfg Config) *Channel {
	t.Helper()
	ch, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.CloseIdleConnections)
	return ch
}

func testConfig() Config {
	return Config{AllowHTTP: true, Allow: loopback}
}

func endpoint(url, sec string) channels.Endpoint {
	return channels.Endpoint{SubscriberID: "m_1042", ID: "e4", Address: url, Secret: secret.Value(sec)}
}

func TestSendIsSignedPerStandardWebhooks(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, testSecret)
	ch := newChannel(t, testConfig())
	msg := channelstest.SampleMessage()
	r, err := ch.Send(t.Context(), endpoint(rcv.URL+"/hooks/status", testSecret), msg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusOK || r.Outbox || r.Detail != strings.TrimPrefix(rcv.URL, "http://") {
		t.Errorf("receipt = %+v", r)
	}
	reqs := rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	got := reqs[0]
	if got.err != nil {
		t.Errorf("the Standard Webhooks library refused the signature: %v", got.err)
	}
	if string(got.body) != string(msg.Body) {
		t.Errorf("body = %s", got.body)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   "Herald-Webhooks/1.0",
		"Webhook-Id":   msg.ID,
	} {
		if v := got.header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if got.header.Get("Authorization") != "" || got.header.Get("Cookie") != "" {
		t.Error("credentials sent")
	}
}

func TestSendContentType(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, testSecret)
	ch := newChannel(t, testConfig())
	msg := channelstest.SampleMessage()
	msg.ContentType = "application/cloudevents+json"
	if _, err := ch.Send(t.Context(), endpoint(rcv.URL, testSecret), msg); err != nil {
		t.Fatal(err)
	}
	if ct := rcv.requests()[0].header.Get("Content-Type"); ct != msg.ContentType {
		t.Errorf("Content-Type = %q", ct)
	}
}

// TestRetryResigns sends the same message twice, as the dispatcher retries:
// the id stays, the timestamp and the signature follow the clock.
func TestRetryResigns(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, testSecret)
	var clock atomic.Int64
	clock.Store(time.Date(2025, 4, 10, 11, 43, 0, 0, time.UTC).Unix())
	cfg := testConfig()
	cfg.Now = func() time.Time { return time.Unix(clock.Load(), 0) }
	ch := newChannel(t, cfg)
	msg := channelstest.SampleMessage()
	ep := endpoint(rcv.URL, testSecret)
	if _, err := ch.Send(t.Context(), ep, msg); err != nil {
		t.Fatal(err)
	}
	clock.Add(300)
	msg.Attempt = 2
	if _, err := ch.Send(t.Context(), ep, msg); err != nil {
		t.Fatal(err)
	}
	reqs := rcv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	wh, _ := standardwebhooks.NewWebhook(testSecret)
	for i, want := range []int64{clock.Load() - 300, clock.Load()} {
		h := reqs[i].header
		if h.Get("Webhook-Id") != msg.ID {
			t.Errorf("attempt %d: webhook-id %q, want %q", i+1, h.Get("Webhook-Id"), msg.ID)
		}
		if ts := h.Get("Webhook-Timestamp"); ts != strconv.FormatInt(want, 10) {
			t.Errorf("attempt %d: webhook-timestamp %q, want %d", i+1, ts, want)
		}
		if err := wh.VerifyIgnoringTimestamp(reqs[i].body, h); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
		sig, _ := wh.Sign(msg.ID, time.Unix(want, 0), msg.Body)
		if h.Get("Webhook-Signature") != sig {
			t.Errorf("attempt %d: signature %q, the library signs %q", i+1, h.Get("Webhook-Signature"), sig)
		}
	}
	if reqs[0].header.Get("Webhook-Signature") == reqs[1].header.Get("Webhook-Signature") {
		t.Error("the retry reused the first signature")
	}
}

func TestSecretRotation(t *testing.T) {
	t.Parallel()
	for _, verifier := range []string{testSecret, otherSecret} {
		rcv := newReceiver(t, verifier)
		ch := newChannel(t, testConfig())
		if _, err := ch.Send(t.Context(), endpoint(rcv.URL, testSecret+" "+otherSecret), channelstest.SampleMessage()); err != nil {
			t.Fatal(err)
		}
		got := rcv.requests()[0]
		if got.err != nil {
			t.Errorf("a receiver holding one of the two secrets refused: %v", got.err)
		}
		if n := len(strings.Fields(got.header.Get("Webhook-Signature"))); n != 2 {
			t.Errorf("%d signatures, want 2", n)
		}
	}
}

// TestContract runs the channel through the contract suite, with the
// field's retry policy: every non-2xx answer retried but 410.
func TestContract(t *testing.T) {
	t.Parallel()
	channelstest.Run(t, contractHarness(nil, channelstest.WebhookCases()))
}

// TestContractPermanentStatuses runs the suite with statuses an operator
// listed as permanent: those are refused for good, the rest still retried.
func TestContractPermanentStatuses(t *testing.T) {
	t.Parallel()
	permanent := []int{301, 400, 404, 422, 499}
	channelstest.Run(t, contractHarness(permanent, channelstest.WebhookCases(permanent...)))
}

func contractHarness(permanent []int, cases []channelstest.Case) channelstest.Harness {
	key := strings.TrimPrefix(testSecret, "whsec_")
	return channelstest.Harness{
		New: func(t *testing.T, a channelstest.Answer, logger *slog.Logger) channelstest.Target {
			p := channelstest.NewHTTPProvider(t, a)
			cfg := testConfig()
			cfg.Timeout = time.Minute // longer than the suite's HangLimit
			cfg.Logger = logger
			cfg.PermanentStatuses = permanent
			return channelstest.Target{
				Channel:  newChannel(t, cfg),
				Endpoint: endpoint(p.URL+"/hooks/status?token="+queryToken, testSecret),
				Attempts: p.Requests,
				Content:  p.LastBody,
			}
		},
		Cases:   cases,
		Secrets: []string{testSecret, key, queryToken, "token=" + queryToken},
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	target := newReceiver(t, testSecret)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	ch := newChannel(t, testConfig())
	_, err := ch.Send(t.Context(), endpoint(redirector.URL, testSecret), channelstest.SampleMessage())
	if c := channels.Classify(err); err == nil || c.Permanent {
		t.Errorf("redirect: err = %v (%+v), want a failure retried on the schedule", err, c)
	}
	if !strings.Contains(err.Error(), "redirect not followed") {
		t.Errorf("err = %v, want it to say the redirect was not followed", err)
	}
	var pe *channels.ProviderError
	if !errors.As(err, &pe) || pe.Status != http.StatusTemporaryRedirect {
		t.Errorf("err = %v, want a ProviderError with status 307", err)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

func TestHangingReceiverTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rcv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(rcv.Close)
	t.Cleanup(func() { close(release) })
	cfg := testConfig()
	cfg.Timeout = 100 * time.Millisecond
	ch := newChannel(t, cfg)
	_, err := ch.Send(context.Background(), endpoint(rcv.URL+"/?token="+queryToken, testSecret), channelstest.SampleMessage())
	if err == nil {
		t.Fatal("a hanging receiver counted as a delivery")
	}
	if c := channels.Classify(err); c.Permanent {
		t.Errorf("timeout classified %+v, want retryable", c)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("err = %v, want a timeout", err)
	}
	if strings.Contains(err.Error(), queryToken) {
		t.Errorf("error %q holds the query token", err)
	}
}

func TestBlockedAddresses(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, testSecret)
	port := rcv.Listener.Addr().(*net.TCPAddr).Port
	strict := newChannel(t, Config{AllowHTTP: true})
	httpsOnly := newChannel(t, Config{Allow: loopback})
	for _, tc := range []struct {
		name    string
		ch      *Channel
		url     string
		blocked bool // a *egress.BlockedError, else an invalid URL
	}{
		{"private literal", strict, "http://10.1.2.3/hook", true},
		{"metadata literal", strict, "http://169.254.169.254/latest/meta-data/", true},
		{"loopback receiver without allow-list", strict, rcv.URL + "/hook", true},
		{"localhost name", strict, "http://localhost:" + strconv.Itoa(port) + "/hook", true},
		{"mapped loopback", strict, "http://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/", true},
		{"decimal loopback", strict, "http://2130706433:" + strconv.Itoa(port) + "/", true},
		{"octal loopback", strict, "http://0177.0.0.1:" + strconv.Itoa(port) + "/", true},
		{"http without AllowHTTP", httpsOnly, rcv.URL + "/hook", false},
		{"credentials", strict, "http://user:pw@127.0.0.1:" + strconv.Itoa(port) + "/", false},
		{"not a URL", strict, "hooks.example.com/status", false},
	} {
		_, err := tc.ch.Send(t.Context(), endpoint(tc.url+"?token="+queryToken, testSecret), channelstest.SampleMessage())
		if c := channels.Classify(err); err == nil || !c.Permanent {
			t.Errorf("%s: err = %v, want permanent", tc.name, err)
			continue
		}
		var be *egress.BlockedError
		if tc.blocked != errors.As(err, &be) {
			t.Errorf("%s: err = %v, blocked = %v", tc.name, err, !tc.blocked)
		}
		if !tc.blocked && !errors.Is(err, egress.ErrInvalidURL) {
			t.Errorf("%s: err = %v, want egress.ErrInvalidURL", tc.name, err)
		}
		for _, s := range []string{queryToken, "pw@", "/hook"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q holds %q", tc.name, err, s)
			}
		}
	}
	if n := rcv.conns.Load(); n != 0 {
		t.Errorf("the receiver saw %d connections", n)
	}
}

func TestInvalidSecrets(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, testSecret)
	ch := newChannel(t, testConfig())
	for _, sec := range []string{
		"",
		"   ",
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // no prefix
		"whsec_not*base64!secretvalue",     // not base64
		"whsec_c2hvcnRrZXk=",               // 8 bytes
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), // too long
		testSecret + " whsec_%%%%",                                     // one bad among two
		strings.Repeat(testSecret+" ", 5),                              // too many
	} {
		_, err := ch.Send(t.Context(), endpoint(rcv.URL, sec), channelstest.SampleMessage())
		if c := channels.Classify(err); err == nil || !c.Permanent {
			t.Errorf("secret %q: err = %v, want permanent", sec, err)
			continue
		}
		if !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("secret %q: err = %v, want ErrInvalidSecret", sec, err)
		}
		for _, f := range strings.Fields(sec) {
			if len(f) > 8 && strings.Contains(err.Error(), f[6:]) {
				t.Errorf("error %q quotes the secret", err)
			}
		}
	}
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("%d unsigned requests reached the receiver", n)
	}
}

func TestInvalidMessages(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, testSecret)
	ch := newChannel(t, testConfig())
	noID := channelstest.SampleMessage()
	noID.ID = ""
	noBody := channelstest.SampleMessage()
	noBody.Body = nil
	for name, msg := range map[string]*channels.Message{"nil": nil, "no id": noID, "no body": noBody} {
		_, err := ch.Send(t.Context(), endpoint(rcv.URL, testSecret), msg)
		if c := channels.Classify(err); err == nil || !c.Permanent {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
	}
}

// TestFailureSummary checks what a refused send keeps of the answer: a
// short line, with the URL's secrets the receiver echoed redacted, and the
// connection reused after the body was drained.
func TestFailureSummary(t *testing.T) {
	t.Parallel()
	const pathToken = "a1b2c3d4e5f6a7b8c9d0"
	rcv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, "<h1>Invalid</h1>\n\tno hook at "+r.URL.RequestURI()+" nor "+r.URL.Query().Get("token")+"\n"+strings.Repeat("padding ", 5000))
	}))
	var conns atomic.Int64
	rcv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	rcv.Start()
	t.Cleanup(rcv.Close)
	ch := newChannel(t, testConfig())
	ep := endpoint(rcv.URL+"/hooks/"+pathToken+"?token="+queryToken+"&v=2", testSecret)
	for range 3 {
		_, err := ch.Send(t.Context(), ep, channelstest.SampleMessage())
		var pe *channels.ProviderError
		if !errors.As(err, &pe) || pe.Status != http.StatusUnprocessableEntity {
			t.Fatalf("err = %v", err)
		}
		want := "<h1>Invalid</h1> no hook at /hooks/[redacted]?[redacted] nor [redacted] padding padding"
		if !strings.HasPrefix(pe.Message, want) {
			t.Errorf("message = %q, want it to start with %q", pe.Message, want)
		}
		if n := len([]rune(pe.Message)); n > summaryRunes+1 {
			t.Errorf("message is %d runes long", n)
		}
		for _, s := range []string{pathToken, queryToken} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error holds %q: %v", s, err)
			}
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 sends, want 1 (drained and reused)", n)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Timeout: -time.Second},
		{ConnectTimeout: -1},
		{MaxResponseBytes: -1},
		{Allow: []netip.Prefix{{}}},
		{PermanentStatuses: []int{200}},
		{PermanentStatuses: []int{404, 99}},
		{PermanentStatuses: []int{600}},
		{PermanentStatuses: []int{410}},
		{MaxIdleConnsPerHost: -1},
		{DNS: egress.DNSConfig{MinTTL: time.Hour, MaxTTL: time.Minute}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	ch := newChannel(t, Config{})
	if ch.cfg.Timeout != 15*time.Second || ch.cfg.ConnectTimeout != 5*time.Second ||
		ch.cfg.MaxResponseBytes != 64<<10 || ch.cfg.UserAgent != "Herald-Webhooks/1.0" || ch.cfg.AllowHTTP {
		t.Errorf("defaults = %+v", ch.cfg)
	}
}

// hostTable answers lookups from a fixed table.
type hostTable map[string][]netip.Addr

func (h hostTable) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := h[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestSendResolvesThroughTheChannelsResolver: host names go through the
// configured resolver, and the address it gives is still checked.
func TestSendResolvesThroughTheChannelsResolver(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, testSecret)
	port := strconv.Itoa(rcv.Listener.Addr().(*net.TCPAddr).Port)
	cfg := testConfig()
	cfg.Resolver = hostTable{
		"hooks.merchant.test": {netip.MustParseAddr("127.0.0.1")},
		"evil.merchant.test":  {netip.MustParseAddr("169.254.169.254")},
	}
	ch := newChannel(t, cfg)
	if _, err := ch.Send(t.Context(), endpoint("http://hooks.merchant.test:"+port+"/hook", testSecret), channelstest.SampleMessage()); err != nil {
		t.Fatal(err)
	}
	_, err := ch.Send(t.Context(), endpoint("http://evil.merchant.test:"+port+"/hook", testSecret), channelstest.SampleMessage())
	var be *egress.BlockedError
	if c := channels.Classify(err); !c.Permanent || !errors.As(err, &be) {
		t.Errorf("err = %v (%+v), want the metadata address blocked for good", err, c)
	}
	_, err = ch.Send(t.Context(), endpoint("http://nowhere.merchant.test:"+port+"/hook", testSecret), channelstest.SampleMessage())
	var de *net.DNSError
	if c := channels.Classify(err); c.Permanent || !errors.As(err, &de) {
		t.Errorf("err = %v (%+v), want a DNS failure retried", err, c)
	}
	if n := len(rcv.requests()); n != 1 {
		t.Errorf("the receiver got %d requests, want 1", n)
	}
}
