package sms

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/internal/golden"
	"github.com/heraldhq/herald/secret"
)

const testTo = "+33612345678"

func endpoint(addr string) channels.Endpoint {
	return channels.Endpoint{SubscriberID: "m_1042", ID: "e2", Address: addr}
}

func TestSendPostsTheMessage(t *testing.T) {
	t.Parallel()
	f := newFakeTwilio(t, testAccountSID, testAuthToken, nil)
	ch := newChannel(t, testConfig(f.URL))
	msg := channelstest.SampleMessage()
	r, err := ch.Send(t.Context(), endpoint("+33 6 12 34 56 78"), msg)
	if err != nil {
		t.Fatal(err)
	}
	if !messageSIDPattern.MatchString(r.ProviderID) || r.Detail != "queued" || r.Status != http.StatusCreated || r.Outbox {
		t.Errorf("receipt = %+v, want a Message SID, status queued, 201", r)
	}
	got := f.received()
	if len(got) != 1 {
		t.Fatalf("Twilio got %d requests, want 1", len(got))
	}
	form := got[0].form
	for k, want := range map[string]string{
		"To":             testTo, // normalised to E.164
		"From":           testFrom,
		"Body":           msg.Text,
		"StatusCallback": testPublicBase + CallbackPath + "?delivery=" + msg.ID + "&endpoint=e2&subscriber=m_1042",
	} {
		if v := form.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if form.Has("MessagingServiceSid") {
		t.Error("MessagingServiceSid sent without being configured")
	}
	if ua := got[0].header.Get("User-Agent"); !strings.HasPrefix(ua, "twilio-go/") || !strings.Contains(ua, "herald-sms/1.0") {
		t.Errorf("User-Agent = %q", ua)
	}
}

// TestSendRequestGolden pins the request Herald sends to Twilio: the form
// fields and the authentication (user only).
func TestSendRequestGolden(t *testing.T) {
	t.Parallel()
	f := newFakeTwilio(t, testAccountSID, testAuthToken, nil)
	ch := newChannel(t, testConfig(f.URL))
	msg := channelstest.SampleMessage()
	if _, err := ch.Send(t.Context(), endpoint(testTo), msg); err != nil {
		t.Fatal(err)
	}
	rq := f.received()[0]
	var lines []string
	user, _, _ := (&http.Request{Header: rq.header}).BasicAuth()
	lines = append(lines, "Authorization: Basic "+user+":<auth token>", "Content-Type: "+rq.header.Get("Content-Type"))
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range rq.form {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		lines = append(lines, k+"="+strings.Join(rq.form[k], ","))
	}
	golden.Check(t, filepath.Join("testdata", "create_message.golden"), []byte(strings.Join(lines, "\n")+"\n"))
}

func TestSendWithAPIKeyAndMessagingService(t *testing.T) {
	t.Parallel()
	f := newFakeTwilio(t, testAPIKey, testAPISecret, nil)
	ch := newChannel(t, Config{
		AccountSID:          testAccountSID,
		APIKey:              testAPIKey,
		APISecret:           secret.Value(testAPISecret),
		MessagingServiceSID: testServiceSID,
		BaseURL:             f.URL + "/", // a trailing slash is fine
	})
	r, err := ch.Send(t.Context(), endpoint(testTo), channelstest.SampleMessage())
	if err != nil {
		t.Fatal(err)
	}
	if r.Detail != "accepted" {
		t.Errorf("detail = %q, want accepted", r.Detail)
	}
	form := f.received()[0].form
	if form.Get("MessagingServiceSid") != testServiceSID || form.Has("From") || form.Has("StatusCallback") {
		t.Errorf("form = %v", form)
	}
}

// TestSendWrongCredentials checks the fake enforces authentication (so the
// other tests prove the channel authenticates) and that a refusal never
// quotes a credential.
func TestSendWrongCredentials(t *testing.T) {
	t.Parallel()
	f := newFakeTwilio(t, testAccountSID, "0000ffff0000ffff0000ffff0000ffff", nil)
	ch := newChannel(t, testConfig(f.URL))
	_, err := ch.Send(t.Context(), endpoint(testTo), channelstest.SampleMessage())
	var pe *channels.ProviderError
	if !errors.As(err, &pe) || pe.Status != 401 || pe.Code != "20003" || !channels.Classify(err).Permanent {
		t.Fatalf("err = %v, want a permanent 401 with code 20003", err)
	}
	if strings.Contains(err.Error(), testAuthToken) {
		t.Errorf("error %q holds the auth token", err)
	}
}

// TestSendReusesConnections: answers, accepted or refused, are read to the
// end so that one connection carries every send.
func TestSendReusesConnections(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	f := newFakeTwilio(t, testAccountSID, testAuthToken, func(url.Values) reply {
		// Trailing white space, which a JSON decoder does not read.
		pad := strings.Repeat(" ", 20000)
		switch n.Add(1) % 3 {
		case 1:
			return reply{status: 201, body: messageJSON(url.Values{"To": {testTo}}, 1) + pad}
		case 2:
			rp := twilioError(400, 21211, "The 'To' number is not a valid phone number.")
			rp.body += pad
			return rp
		}
		return twilioError(503, 20503, "Service Unavailable "+strings.Repeat("padding ", 2000))
	})
	ch := newChannel(t, testConfig(f.URL))
	for range 6 {
		_, _ = ch.Send(t.Context(), endpoint(testTo), channelstest.SampleMessage())
	}
	if got := f.requests.Load(); got != 6 {
		t.Fatalf("Twilio got %d requests, want 6", got)
	}
	if c := f.conns.Load(); c != 1 {
		t.Errorf("%d connections for 6 sends, want 1", c)
	}
}

// TestSendUsesTheClock: the receipt's duration and a Retry-After date are
// read on the injected clock.
func TestSendUsesTheClock(t *testing.T) {
	t.Parallel()
	base := time.Date(2025, 4, 10, 11, 43, 0, 0, time.UTC)
	var ticks atomic.Int64
	f := newFakeTwilio(t, testAccountSID, testAuthToken, func(url.Values) reply {
		rp := twilioError(503, 20503, "Service Unavailable")
		rp.header = map[string]string{"Retry-After": base.Add(time.Minute).Format(http.TimeFormat)}
		return rp
	})
	cfg := testConfig(f.URL)
	cfg.Now = func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * 1500 * time.Millisecond) }
	ch := newChannel(t, cfg)
	ticks.Store(-1) // the first reading is base
	r, err := ch.Send(t.Context(), endpoint(testTo), channelstest.SampleMessage())
	if r.Duration != 1500*time.Millisecond {
		t.Errorf("duration %s, want 1.5s", r.Duration)
	}
	if c := channels.Classify(err); c.Permanent || c.After != 58500*time.Millisecond {
		t.Errorf("classified %+v, want a retry after 58.5s (error: %v)", c, err)
	}
}

// TestSendOutcomes is the table of Twilio's answers and what the dispatcher
// must read from each.
func TestSendOutcomes(t *testing.T) {
	t.Parallel()
	const retryAfter = "7"
	disable := channels.Classification{Permanent: true, Action: channels.DisableEndpoint}
	suppress := channels.Classification{Permanent: true, Action: channels.SuppressAddress}
	permanent := channels.Classification{Permanent: true}
	retry := channels.Classification{}
	retry7 := channels.Classification{After: 7 * time.Second}
	with := func(rp reply, h map[string]string) reply { rp.header = h; return rp }
	for _, tc := range []struct {
		name   string
		reply  reply
		want   channels.Classification
		status int    // of the ProviderError, 0: none expected
		code   string // of the ProviderError
	}{
		{"21211 invalid number disables", twilioError(400, 21211, "The 'To' number +33612345678 is not a valid phone number."), disable, 400, "21211"},
		{"21614 not a mobile disables", twilioError(400, 21614, "'To' number is not a valid mobile number"), disable, 400, "21614"},
		{"21610 STOP suppresses", twilioError(400, 21610, "Attempt to send to unsubscribed recipient"), suppress, 400, "21610"},
		{"429 with Retry-After", with(twilioError(429, 20429, "Too Many Requests"), map[string]string{"Retry-After": retryAfter}), retry7, 429, "20429"},
		{"429 without a code", with(reply{status: 429, body: "slow down"}, map[string]string{"Retry-After": retryAfter}), retry7, 429, ""},
		{"20429 without Retry-After", twilioError(429, 20429, "Too Many Requests"), retry, 429, "20429"},
		{"21611 queue full retryable", twilioError(400, 21611, "This 'From' number has exceeded the maximum number of queued messages"), retry, 400, "21611"},
		{"500 Twilio error retryable", twilioError(500, 20500, "Internal Server Error"), retry, 500, "20500"},
		{"502 HTML retryable", reply{status: 502, body: "<html><body>Bad Gateway</body></html>"}, retry, 502, ""},
		{"503 with Retry-After", with(twilioError(503, 20503, "Service Unavailable"), map[string]string{"Retry-After": retryAfter}), retry7, 503, "20503"},
		{"21408 region not enabled permanent", twilioError(400, 21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"), permanent, 400, "21408"},
		{"21617 body too long permanent", twilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit."), permanent, 400, "21617"},
		{"403 permanent", twilioError(403, 20403, "Forbidden"), permanent, 403, "20403"},
		{"404 permanent", twilioError(404, 20404, "The requested resource was not found"), permanent, 404, "20404"},
		{"410 permanent, endpoint kept", reply{status: 410, body: "gone"}, permanent, 410, ""},
		{"302 permanent", with(reply{status: 302}, map[string]string{"Location": "https://elsewhere.example/"}), permanent, 302, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeTwilio(t, testAccountSID, testAuthToken, func(url.Values) reply { return tc.reply })
			ch := newChannel(t, testConfig(f.URL))
			r, err := ch.Send(t.Context(), endpoint(testTo), channelstest.SampleMessage())
			if err == nil {
				t.Fatalf("delivered (%+v), want %+v", r, tc.want)
			}
			got := channels.Classify(err)
			if got.Permanent != tc.want.Permanent || got.Action != tc.want.Action || got.After != tc.want.After {
				t.Errorf("classified %+v, want %+v (error: %v)", got, tc.want, err)
			}
			var pe *channels.ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a ProviderError", err)
			}
			if pe.Status != tc.status || pe.Code != tc.code {
				t.Errorf("ProviderError %+v, want status %d code %q", pe, tc.status, tc.code)
			}
			if pe.Message == "" || strings.ContainsFunc(pe.Message, func(r rune) bool { return r < ' ' }) {
				t.Errorf("message %q, want a non-empty single line", pe.Message)
			}
			if r.Status != tc.status {
				t.Errorf("receipt status %d, want %d", r.Status, tc.status)
			}
			if n := f.requests.Load(); n != 1 {
				t.Errorf("Twilio got %d requests, want 1", n)
			}
		})
	}
}

// TestSendTransportFailures covers answers that never come.
func TestSendTransportFailures(t *testing.T) {
	t.Parallel()
	t.Run("context deadline on a hanging server", func(t *testing.T) {
		t.Parallel()
		f := newFakeTwilio(t, testAccountSID, testAuthToken, func(url.Values) reply { return reply{hang: true} })
		ch := newChannel(t, testConfig(f.URL))
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := ch.Send(ctx, endpoint(testTo), channelstest.SampleMessage())
		if err == nil || channels.Classify(err).Permanent || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a retryable deadline error", err)
		}
		if ctx.Err() == nil {
			t.Error("Send returned before the deadline")
		}
	})
	t.Run("channel timeout on a hanging server", func(t *testing.T) {
		t.Parallel()
		f := newFakeTwilio(t, testAccountSID, testAuthToken, func(url.Values) reply { return reply{hang: true} })
		cfg := testConfig(f.URL)
		cfg.Timeout = 200 * time.Millisecond
		ch := newChannel(t, cfg)
		_, err := ch.Send(context.Background(), endpoint(testTo), channelstest.SampleMessage())
		if err == nil || channels.Classify(err).Permanent || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a retryable deadline error", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		cfg := testConfig("")
		cfg.BaseURL = "http://" + addr
		ch := newChannel(t, cfg)
		_, err = ch.Send(t.Context(), endpoint(testTo), channelstest.SampleMessage())
		var oe *net.OpError
		if err == nil || channels.Classify(err).Permanent || !errors.As(err, &oe) {
			t.Fatalf("err = %v, want a retryable connection error", err)
		}
		if strings.Contains(err.Error(), "/Accounts/") {
			t.Errorf("error %q quotes the request URL", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		t.Parallel()
		f := newFakeTwilio(t, testAccountSID, testAuthToken, nil)
		ch := newChannel(t, testConfig(f.URL))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := ch.Send(ctx, endpoint(testTo), channelstest.SampleMessage())
		if err == nil || channels.Classify(err).Permanent || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want a retryable cancellation", err)
		}
		if n := f.requests.Load(); n != 0 {
			t.Errorf("Twilio got %d requests after cancellation", n)
		}
	})
}

// TestSendUnreadableAcceptance: a 2xx is a delivery even when its body is
// not Twilio's JSON, since sending again would duplicate the SMS.
func TestSendUnreadableAcceptance(t *testing.T) {
	t.Parallel()
	f := newFakeTwilio(t, testAccountSID, testAuthToken, func(url.Values) reply {
		return reply{status: 201, body: "<html>created</html>"}
	})
	ch := newChannel(t, testConfig(f.URL))
	r, err := ch.Send(t.Context(), endpoint(testTo), channelstest.SampleMessage())
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 201 || r.ProviderID != "" || r.Detail != "accepted" {
		t.Errorf("receipt = %+v", r)
	}
}

func TestSendInvalidNumbers(t *testing.T) {
	t.Parallel()
	f := newFakeTwilio(t, testAccountSID, testAuthToken, nil)
	ch := newChannel(t, testConfig(f.URL))
	for _, addr := range []string{
		"",
		"0612345678",           // national form: no country
		"0033612345678",        // international prefix instead of +
		"+33 6 12",             // too short
		"+3361234567",          // one digit short for France
		"+999 123456789",       // no such country code
		"+4920100000000000",    // valid in Germany's plan, over E.164's 15 digits
		"+33612345678 ext. 12", // extension
		"+1 800 FLOWERS",       // letters
		"ops@dupont.example",
		"https://dupont.example/hooks",
		"+33612345678\n+33600000000",
		strings.Repeat("+33612345678", 20),
	} {
		_, err := ch.Send(t.Context(), endpoint(addr), channelstest.SampleMessage())
		c := channels.Classify(err)
		if err == nil || !c.Permanent || c.Action != channels.DisableEndpoint || !errors.Is(err, ErrInvalidNumber) {
			t.Errorf("%q: err = %v (%+v), want ErrInvalidNumber disabling the endpoint", addr, err, c)
			continue
		}
		if len(addr) > 4 && strings.Contains(err.Error(), addr) {
			t.Errorf("%q: the error quotes the address: %v", addr, err)
		}
	}
	if n := f.requests.Load(); n != 0 {
		t.Errorf("Twilio got %d requests for invalid numbers", n)
	}
}

func TestSendInvalidMessages(t *testing.T) {
	t.Parallel()
	f := newFakeTwilio(t, testAccountSID, testAuthToken, nil)
	ch := newChannel(t, testConfig(f.URL))
	empty := channelstest.SampleMessage()
	empty.Text = " \n "
	for name, msg := range map[string]*channels.Message{"nil": nil, "no text": empty} {
		_, err := ch.Send(t.Context(), endpoint(testTo), msg)
		if c := channels.Classify(err); err == nil || !c.Permanent || c.Action != channels.NoAction {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
	}
	if n := f.requests.Load(); n != 0 {
		t.Errorf("Twilio got %d requests", n)
	}
}

// TestSendRateLimit: with one message per 1000 s, a second send whose
// context cannot wait for its turn fails retryable without reaching Twilio.
func TestSendRateLimit(t *testing.T) {
	t.Parallel()
	f := newFakeTwilio(t, testAccountSID, testAuthToken, nil)
	cfg := testConfig(f.URL)
	cfg.Rate, cfg.Burst = rate.Every(1000*time.Second), 1
	ch := newChannel(t, cfg)
	if _, err := ch.Send(t.Context(), endpoint(testTo), channelstest.SampleMessage()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := ch.Send(ctx, endpoint(testTo), channelstest.SampleMessage())
	if err == nil || channels.Classify(err).Permanent {
		t.Fatalf("err = %v, want a retryable rate-limit error", err)
	}
	if n := f.requests.Load(); n != 1 {
		t.Errorf("Twilio got %d requests, want 1", n)
	}
}

func TestContract(t *testing.T) {
	t.Parallel()
	basic := base64.StdEncoding.EncodeToString([]byte(testAccountSID + ":" + testAuthToken))
	channelstest.Run(t, channelstest.Harness{
		New: func(t *testing.T, a channelstest.Answer, logger *slog.Logger) channelstest.Target {
			p := channelstest.NewHTTPProvider(t, a)
			cfg := testConfig("")
			cfg.BaseURL = p.URL
			cfg.Timeout = time.Minute // longer than the suite's HangLimit
			cfg.Logger = logger
			return channelstest.Target{
				Channel:  newChannel(t, cfg),
				Endpoint: endpoint(testTo),
				Attempts: p.Requests,
				Content:  func() []byte { return p.LastForm("Body") },
			}
		},
		Cases:   contractCases(),
		Secrets: []string{testAuthToken, basic},
	})
}

// contractCases is channelstest's HTTP table adapted to Twilio: a 410 from
// Twilio's API says nothing about the subscriber's number, and Twilio's
// error documents decide before the HTTP status.
func contractCases() []channelstest.Case {
	permanent := channels.Classification{Permanent: true}
	var cases []channelstest.Case
	for _, c := range channelstest.HTTPCases() {
		if c.Answer.Status == http.StatusGone {
			c.Name, c.Want = "410 permanent, endpoint kept", permanent
		}
		cases = append(cases, c)
	}
	doc := func(rp reply) string { return rp.body }
	return append(cases,
		channelstest.Case{Name: "201 Twilio message delivered", Answer: channelstest.Answer{Status: 201, Body: messageJSON(url.Values{"To": {testTo}}, 1)}, Delivered: true},
		channelstest.Case{Name: "21211 disables the endpoint", Answer: channelstest.Answer{Status: 400, Body: doc(twilioError(400, 21211, "The 'To' number is not a valid phone number."))},
			Want: channels.Classification{Permanent: true, Action: channels.DisableEndpoint}},
		channelstest.Case{Name: "21614 disables the endpoint", Answer: channelstest.Answer{Status: 400, Body: doc(twilioError(400, 21614, "'To' number is not a valid mobile number"))},
			Want: channels.Classification{Permanent: true, Action: channels.DisableEndpoint}},
		channelstest.Case{Name: "21610 suppresses the address", Answer: channelstest.Answer{Status: 400, Body: doc(twilioError(400, 21610, "Attempt to send to unsubscribed recipient"))},
			Want: channels.Classification{Permanent: true, Action: channels.SuppressAddress}},
		channelstest.Case{Name: "20429 with Retry-After", Answer: channelstest.Answer{Status: 429, Header: map[string]string{"Retry-After": "7"}, Body: doc(twilioError(429, 20429, "Too Many Requests"))},
			Want: channels.Classification{After: 7 * time.Second}},
		channelstest.Case{Name: "21408 permanent", Answer: channelstest.Answer{Status: 400, Body: doc(twilioError(400, 21408, "Permission to send an SMS has not been enabled"))}, Want: permanent},
		channelstest.Case{Name: "error echoing the credentials", Answer: channelstest.Answer{Status: 400,
			Body: doc(twilioError(400, 20001, "bad request with "+testAuthToken+" and Basic "+base64.StdEncoding.EncodeToString([]byte(testAccountSID+":"+testAuthToken))))}, Want: permanent},
	)
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	good := Config{AccountSID: testAccountSID, AuthToken: secret.Value(testAuthToken), From: testFrom}
	for name, mutate := range map[string]func(*Config){
		"no account":                 func(c *Config) { c.AccountSID = "" },
		"account SID malformed":      func(c *Config) { c.AccountSID = "AC123" },
		"no credentials":             func(c *Config) { c.AuthToken = "" },
		"token with symbols":         func(c *Config) { c.AuthToken = "abc:def" },
		"API key without secret":     func(c *Config) { c.APIKey = testAPIKey },
		"API key malformed":          func(c *Config) { c.APIKey, c.APISecret = "SK12", testAPISecret },
		"API secret without key":     func(c *Config) { c.APISecret = testAPISecret },
		"no sender":                  func(c *Config) { c.From = "" },
		"From not E.164":             func(c *Config) { c.From = "+33 7 57 00 00 00" },
		"From invalid":               func(c *Config) { c.From = "+3375" },
		"From alphanumeric too long": func(c *Config) { c.From = "HeraldStatus" },
		"From digits only too long":  func(c *Config) { c.From = "123456789" },
		"service SID malformed":      func(c *Config) { c.MessagingServiceSID = "MGxyz" },
		"callback relative":          func(c *Config) { c.StatusCallback = "/hooks/twilio/status" },
		"callback with credentials":  func(c *Config) { c.StatusCallback = "https://u:p@herald.example/hooks/twilio/status" },
		"callback with API key only": func(c *Config) {
			c.AuthToken, c.APIKey, c.APISecret, c.StatusCallback = "", testAPIKey, testAPISecret, CallbackURL(testPublicBase)
		},
		"base URL with a query": func(c *Config) { c.BaseURL = "https://api.twilio.com?x=1" },
		"base URL not http":     func(c *Config) { c.BaseURL = "ftp://api.twilio.com" },
		"negative timeout":      func(c *Config) { c.Timeout = -time.Second },
		"negative rate":         func(c *Config) { c.Rate = -1 },
		"negative burst":        func(c *Config) { c.Burst = -1 },
	} {
		cfg := good
		mutate(&cfg)
		_, err := New(cfg)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, s := range []string{testAuthToken, testAPISecret, "abc:def"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q quotes a credential", name, err)
			}
		}
	}
	for name, mutate := range map[string]func(*Config){
		"short code":          func(c *Config) { c.From = "36123" },
		"alphanumeric sender": func(c *Config) { c.From = "Herald" },
		"service only":        func(c *Config) { c.From, c.MessagingServiceSID = "", testServiceSID },
		"service and From":    func(c *Config) { c.MessagingServiceSID = testServiceSID },
		"API key and token": func(c *Config) {
			c.APIKey, c.APISecret, c.StatusCallback = testAPIKey, testAPISecret, CallbackURL(testPublicBase)
		},
		"unlimited rate":          func(c *Config) { c.Rate = rate.Inf },
		"callback with own query": func(c *Config) { c.StatusCallback = CallbackURL(testPublicBase) + "?region=eu" },
		"custom http client":      func(c *Config) { c.HTTPClient = &http.Client{} },
		"regional base URL":       func(c *Config) { c.BaseURL = "https://api.dublin.ie1.twilio.com" },
	} {
		cfg := good
		mutate(&cfg)
		if _, err := New(cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	ch := newChannel(t, good)
	if ch.cfg.BaseURL != DefaultBaseURL || ch.cfg.Timeout != 15*time.Second || ch.cfg.Rate != 10 ||
		ch.cfg.Burst != 1 || ch.CallbackVerifier() != nil {
		t.Errorf("defaults = %+v", ch.cfg)
	}
}
