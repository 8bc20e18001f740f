package sms

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/secret"
)

// Test credentials, in Twilio's formats.
const (
	testAccountSID = "AC0123456789abcdef0123456789abcdef"
	testAuthToken  = "f3a9c1e07b5d4e2a9c8b7a6f5e4d3c2b"
	testAPIKey     = "SKfedcba9876543210fedcba9876543210"
	testAPISecret  = "Zq4Lr8Tn2Vx6Bz0Cm5Kp9Hs3Jd7Fg1Wa"
	testServiceSID = "MG00112233445566778899aabbccddeeff"
	testFrom       = "+33757000000"
	testPublicBase = "https://status.herald.example"
)

// reply is what the fake Twilio answers to one request.
type reply struct {
	status int
	header map[string]string
	body   string
	hang   bool // never answer (until the client leaves)
}

// twilioError is a Twilio error document.
func twilioError(status, code int, message string) reply {
	b, _ := json.Marshal(map[string]any{
		"code":      code,
		"message":   message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		"status":    status,
	})
	return reply{status: status, body: string(b)}
}

// received is a request the fake Twilio accepted for processing.
type received struct {
	form   url.Values
	header http.Header
}

// fakeTwilio speaks the shape of Twilio's Messages API on 127.0.0.1:
// POST /2010-04-01/Accounts/{sid}/Messages.json, form-encoded, HTTP basic
// authentication with the account SID and auth token or an API key and
// secret, JSON answers, Twilio error documents.
type fakeTwilio struct {
	*httptest.Server
	user, pass string
	// script, if set, chooses the answer to a well-formed request.
	script   func(form url.Values) reply
	record   bool
	requests atomic.Int64
	conns    atomic.Int64 // connections accepted
	mu       sync.Mutex
	got      []received
	release  chan struct{}
}

func newFakeTwilio(t testing.TB, user, pass string, script func(url.Values) reply) *fakeTwilio {
	t.Helper()
	f := &fakeTwilio{user: user, pass: pass, script: script, record: true, release: make(chan struct{})}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.Start()
	t.Cleanup(f.Close)
	t.Cleanup(func() { close(f.release) }) // runs first: frees hanging handlers
	return f
}

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	write := func(rp reply) {
		for k, v := range rp.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rp.status)
		_, _ = io.WriteString(w, rp.body)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+testAccountSID+"/Messages.json" {
		write(twilioError(404, 20404, "The requested resource "+r.URL.Path+" was not found"))
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.pass {
		write(twilioError(401, 20003, "Authenticate"))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		write(twilioError(400, 20001, "unsupported content type"))
		return
	}
	if err := r.ParseForm(); err != nil {
		write(twilioError(400, 20001, "malformed body"))
		return
	}
	form := r.PostForm
	if f.record {
		f.mu.Lock()
		f.got = append(f.got, received{form: form, header: r.Header.Clone()})
		f.mu.Unlock()
	}
	switch {
	case form.Get("To") == "":
		write(twilioError(400, 21604, "A 'To' phone number is required."))
		return
	case form.Get("Body") == "":
		write(twilioError(400, 21602, "Message body is required."))
		return
	case form.Get("From") == "" && form.Get("MessagingServiceSid") == "":
		write(twilioError(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."))
		return
	}
	rp := reply{status: http.StatusCreated}
	if f.script != nil {
		rp = f.script(form)
	}
	if rp.hang {
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	}
	if rp.body == "" && rp.status == http.StatusCreated {
		rp.body = messageJSON(form, f.requests.Load())
	}
	write(rp)
}

func (f *fakeTwilio) received() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// messageJSON is Twilio's answer to a created message.
func messageJSON(form url.Values, n int64) string {
	status := "queued"
	if form.Get("MessagingServiceSid") != "" {
		status = "accepted"
	}
	sid := fmt.Sprintf("SM%032x", n)
	b, _ := json.Marshal(map[string]any{
		"account_sid":           testAccountSID,
		"api_version":           "2010-04-01",
		"body":                  form.Get("Body"),
		"date_created":          "Thu, 10 Apr 2025 11:43:00 +0000",
		"date_sent":             nil,
		"date_updated":          "Thu, 10 Apr 2025 11:43:00 +0000",
		"direction":             "outbound-api",
		"error_code":            nil,
		"error_message":         nil,
		"from":                  form.Get("From"),
		"messaging_service_sid": form.Get("MessagingServiceSid"),
		"num_media":             "0",
		"num_segments":          "1",
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   sid,
		"status":                status,
		"subresource_uris":      map[string]string{"media": "/2010-04-01/Accounts/" + testAccountSID + "/Messages/" + sid + "/Media.json"},
		"to":                    form.Get("To"),
		"uri":                   "/2010-04-01/Accounts/" + testAccountSID + "/Messages/" + sid + ".json",
	})
	return string(b)
}

// testConfig returns a configuration for a channel talking to the API at
// baseURL with the auth token, asking for status callbacks at the public
// base URL.
func testConfig(baseURL string) Config {
	return Config{
		AccountSID:     testAccountSID,
		AuthToken:      secret.Value(testAuthToken),
		From:           testFrom,
		StatusCallback: CallbackURL(testPublicBase),
		BaseURL:        baseURL,
	}
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

// twilioSign computes X-Twilio-Signature the way Twilio documents it:
// base64 of the HMAC-SHA1, keyed with the auth token, of the full URL
// followed by every POST parameter's name and value, sorted by name. It is
// written from the documentation, independently of the code under test;
// TestTwilioSignMatchesTwilioGo pins it to twilio-go's test vector, and
// signed() checks every signature against twilio-go's validator.
func twilioSign(token, fullURL string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(params[k])
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
