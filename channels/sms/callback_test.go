package sms

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	twclient "github.com/twilio/twilio-go/client"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/secret"
)

const (
	testMessageSID = "SM5c1f0e9a7b3d4e215c1f0e9a7b3d4e21"
	callbackQuery  = "delivery=dlv_5c1f0e9a7b3d4e21&endpoint=e2&subscriber=m_1042"
)

// publicCallback is the configured StatusCallback with the query Send adds.
var publicCallback = CallbackURL(testPublicBase) + "?" + callbackQuery

// TestTwilioSignMatchesTwilioGo pins the test signer to the vector of
// twilio-go's own request validator tests.
func TestTwilioSignMatchesTwilioGo(t *testing.T) {
	t.Parallel()
	params := map[string]string{
		"Digits": "1234", "CallSid": "CA1234567890ABCDE", "To": "+18005551212",
		"Caller": "+14158675309", "From": "+14158675309",
		"ReasonConferenceEnded": "test", "Reason": "Participant",
	}
	const vector = "vOEb5UThFn24KEfnOFLQY2AE5FY="
	if got := twilioSign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params); got != vector {
		t.Fatalf("signature %q, want twilio-go's %q", got, vector)
	}
}

// signed returns the signature of a callback posted to fullURL with body,
// after checking that twilio-go's RequestValidator accepts it.
func signed(t *testing.T, token, fullURL, body string) string {
	t.Helper()
	vals, err := url.ParseQuery(body)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	for k, v := range vals {
		params[k] = v[0]
	}
	sig := twilioSign(token, fullURL, params)
	rv := twclient.NewRequestValidator(token)
	if !rv.Validate(fullURL, params, sig) {
		t.Fatalf("twilio-go's validator refuses the test signature for %s", fullURL)
	}
	return sig
}

// callbackBody reads a golden callback body from testdata/.
func callbackBody(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// recorder is the record function the dispatcher would give: it keeps the
// callbacks, or fails with err.
type recorder struct {
	mu  sync.Mutex
	got []Callback
	err error
}

func (r *recorder) record(_ context.Context, cb Callback) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.got = append(r.got, cb)
	return nil
}

func (r *recorder) callbacks() []Callback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Callback(nil), r.got...)
}

func newVerifier(t testing.TB, logger *slog.Logger) *CallbackVerifier {
	t.Helper()
	v, err := NewCallbackVerifier(Config{
		AccountSID:     testAccountSID,
		AuthToken:      secret.Value(testAuthToken),
		StatusCallback: CallbackURL(testPublicBase),
		Logger:         logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// callbackServer serves the handler on 127.0.0.1 the way the dispatcher
// mounts it; its address differs from the public URL, as behind a proxy.
func callbackServer(t *testing.T, rec *recorder, logger *slog.Logger) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST "+CallbackPath, CallbackHandler(newVerifier(t, logger), rec.record))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, srv *httptest.Server, query, contentType, sig, body string) int {
	t.Helper()
	target := srv.URL + CallbackPath
	if query != "" {
		target += "?" + query
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if sig != "" {
		req.Header.Set(SignatureHeader, sig)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

const form = "application/x-www-form-urlencoded"

func TestCallbackHandler(t *testing.T) {
	t.Parallel()
	delivered := callbackBody(t, "callback_delivered.form")
	failed := callbackBody(t, "callback_failed.form")
	sigDelivered := signed(t, testAuthToken, publicCallback, delivered)
	replace := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("%q not in %q", old, s)
		}
		return strings.Replace(s, old, new, 1)
	}
	// A signed body built from the delivered one by replace.
	signedVariant := func(old, new string) (string, string) {
		b := replace(delivered, old, new)
		return b, signed(t, testAuthToken, publicCallback, b)
	}
	noSID, sigNoSID := signedVariant("MessageSid="+testMessageSID+"&", "")
	unknown, sigUnknown := signedVariant("MessageStatus=delivered", "MessageStatus=lost")
	badCode, sigBadCode := signedVariant("MessageStatus=delivered", "MessageStatus=failed&ErrorCode=30x")
	otherAccount, sigOther := signedVariant("AccountSid="+testAccountSID, "AccountSid=AC"+strings.Repeat("9", 32))
	noAccount, sigNoAccount := signedVariant("AccountSid="+testAccountSID+"&", "")
	controlTo, sigControlTo := signedVariant("To=%2B33612345678", "To=%2B336%0A12345678")
	smsStatusOnly, sigSMSStatus := signedVariant("MessageStatus=delivered&", "")
	// twilio-go's validator signs the first value of a repeated parameter:
	// a second value is unsigned, so Herald refuses repetitions.
	repeated := delivered + "&MessageStatus=failed"
	if !func() bool {
		rv := twclient.NewRequestValidator(testAuthToken)
		return rv.ValidateBody(publicCallback, []byte(repeated), sigDelivered)
	}() {
		t.Fatal("twilio-go's validator refuses a repeated parameter: the repetition case tests nothing")
	}
	for _, tc := range []struct {
		name        string
		query       string
		contentType string
		sig         string
		body        string
		want        int
	}{
		{"delivered", callbackQuery, form, sigDelivered, delivered, 204},
		{"failed", callbackQuery, form, signed(t, testAuthToken, publicCallback, failed), failed, 204},
		{"SmsStatus only", callbackQuery, form, sigSMSStatus, smsStatusOnly, 204},
		{"charset in content type", callbackQuery, form + "; charset=utf-8", sigDelivered, delivered, 204},
		{"signed with the default port", callbackQuery, form,
			signed(t, testAuthToken, strings.Replace(publicCallback, ".example/", ".example:443/", 1), delivered), delivered, 204},
		{"missing signature", callbackQuery, form, "", delivered, 403},
		{"tampered parameter", callbackQuery, form, sigDelivered, replace(delivered, "MessageStatus=delivered", "MessageStatus=failed"), 403},
		{"added parameter", callbackQuery, form, sigDelivered, delivered + "&ErrorCode=30005", 403},
		{"removed parameter", callbackQuery, form, sigDelivered, replace(delivered, "&ApiVersion=2010-04-01", ""), 403},
		{"tampered query", strings.Replace(callbackQuery, "dlv_5c1f", "dlv_0000", 1), form, sigDelivered, delivered, 403},
		{"missing query", "", form, sigDelivered, delivered, 403},
		{"wrong URL", callbackQuery, form, signed(t, testAuthToken, "https://evil.example"+CallbackPath+"?"+callbackQuery, delivered), delivered, 403},
		{"wrong path", callbackQuery, form, signed(t, testAuthToken, testPublicBase+"/hooks/other?"+callbackQuery, delivered), delivered, 403},
		{"http instead of https", callbackQuery, form, signed(t, testAuthToken, strings.Replace(publicCallback, "https:", "http:", 1), delivered), delivered, 403},
		{"wrong token", callbackQuery, form, signed(t, "00000000000000000000000000000000", publicCallback, delivered), delivered, 403},
		{"garbage signature", callbackQuery, form, "not-a-signature", delivered, 403},
		{"another account", callbackQuery, form, sigOther, otherAccount, 403},
		{"repeated parameter", callbackQuery, form, sigDelivered, repeated, 400},
		{"no MessageSid", callbackQuery, form, sigNoSID, noSID, 400},
		{"no AccountSid", callbackQuery, form, sigNoAccount, noAccount, 400},
		{"unknown status", callbackQuery, form, sigUnknown, unknown, 400},
		{"ErrorCode not a number", callbackQuery, form, sigBadCode, badCode, 400},
		{"control character in To", callbackQuery, form, sigControlTo, controlTo, 400},
		{"JSON body", callbackQuery, "application/json", sigDelivered, `{"MessageSid":"` + testMessageSID + `"}`, 400},
		{"no content type", callbackQuery, "", sigDelivered, delivered, 400},
		{"not URL-encoded", callbackQuery, form, sigDelivered, "MessageSid=%zz", 400},
		{"huge body", callbackQuery, form, sigDelivered, delivered + "&Pad=" + strings.Repeat("x", maxCallbackBytes), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			logs := &bytes.Buffer{}
			srv := callbackServer(t, rec, slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if got := post(t, srv, tc.query, tc.contentType, tc.sig, tc.body); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
			n := len(rec.callbacks())
			if tc.want == 204 && n != 1 || tc.want != 204 && n != 0 {
				t.Errorf("%d callbacks recorded", n)
			}
			if strings.Contains(logs.String(), testAuthToken) {
				t.Error("the auth token was logged")
			}
		})
	}
}

// lockedWriter serialises writes (handlers log from server goroutines).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestCallbackFields(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	srv := callbackServer(t, rec, nil)
	for _, name := range []string{"callback_delivered.form", "callback_failed.form"} {
		body := callbackBody(t, name)
		if got := post(t, srv, callbackQuery, form, signed(t, testAuthToken, publicCallback, body), body); got != 204 {
			t.Fatalf("%s: status %d", name, got)
		}
	}
	got := rec.callbacks()
	want := []Callback{
		{MessageSID: testMessageSID, AccountSID: testAccountSID, Status: StatusDelivered, To: "+33612345678", From: testFrom,
			DeliveryID: "dlv_5c1f0e9a7b3d4e21", SubscriberID: "m_1042", EndpointID: "e2"},
		{MessageSID: testMessageSID, AccountSID: testAccountSID, Status: StatusUndelivered, ErrorCode: 30006, To: "+33612345678", From: testFrom,
			DeliveryID: "dlv_5c1f0e9a7b3d4e21", SubscriberID: "m_1042", EndpointID: "e2"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d callbacks", len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("callback %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if c := channels.Classify(got[1].Err()); !c.Permanent || c.Action != channels.DisableEndpoint {
		t.Errorf("undelivered 30006 classified %+v, want the endpoint disabled", c)
	}
}

func TestCallbackHandlerMethodAndRecordFailure(t *testing.T) {
	t.Parallel()
	rec := &recorder{err: errors.New("delivery log unavailable")}
	v := newVerifier(t, nil)
	srv := httptest.NewServer(CallbackHandler(v, rec.record))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + CallbackPath)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	body := callbackBody(t, "callback_delivered.form")
	// The handler mounted at the root sees the same public URL.
	req := httptest.NewRequest(http.MethodPost, "/anything?"+callbackQuery, strings.NewReader(body))
	req.Header.Set("Content-Type", form)
	req.Header.Set(SignatureHeader, signed(t, testAuthToken, publicCallback, body))
	w := httptest.NewRecorder()
	CallbackHandler(v, rec.record).ServeHTTP(w, req)
	if w.Code != 500 || strings.Contains(w.Body.String(), "delivery log") {
		t.Errorf("record failure: %d %q, want a generic 500", w.Code, w.Body.String())
	}
	// Without StatusCallback there is no verifier, and nothing to serve.
	w = httptest.NewRecorder()
	CallbackHandler(nil, rec.record).ServeHTTP(w, req)
	if w.Code != 404 {
		t.Errorf("without a verifier: %d, want 404", w.Code)
	}
}

func TestCallbackErr(t *testing.T) {
	t.Parallel()
	disable := channels.Classification{Permanent: true, Action: channels.DisableEndpoint}
	for _, tc := range []struct {
		status Status
		code   int
		want   *channels.Classification // nil: no error
	}{
		{StatusQueued, 0, nil},
		{StatusSent, 0, nil},
		{StatusDelivered, 0, nil},
		{StatusUndelivered, 30003, &channels.Classification{Permanent: true}},
		{StatusUndelivered, 30005, &disable},
		{StatusUndelivered, 30006, &disable},
		{StatusFailed, 21211, &disable},
		{StatusFailed, 21614, &disable},
		{StatusFailed, 21610, &channels.Classification{Permanent: true, Action: channels.SuppressAddress}},
		{StatusFailed, 30007, &channels.Classification{Permanent: true}},
		{StatusFailed, 0, &channels.Classification{Permanent: true}},
	} {
		err := Callback{Status: tc.status, ErrorCode: tc.code}.Err()
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s %d: %v, want nil", tc.status, tc.code, err)
			}
			continue
		}
		if c := channels.Classify(err); err == nil || c != *tc.want {
			t.Errorf("%s %d: %v classified %+v, want %+v", tc.status, tc.code, err, c, *tc.want)
		}
	}
	for s, final := range map[Status]bool{StatusQueued: false, StatusSending: false, StatusSent: false, StatusDelivered: true, StatusUndelivered: true, StatusFailed: true} {
		if s.Final() != final {
			t.Errorf("%s.Final() = %v", s, !final)
		}
	}
}

func TestNewCallbackVerifierValidates(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"no token":       {AccountSID: testAccountSID, StatusCallback: CallbackURL(testPublicBase)},
		"no URL":         {AccountSID: testAccountSID, AuthToken: testAuthToken},
		"relative URL":   {AccountSID: testAccountSID, AuthToken: testAuthToken, StatusCallback: CallbackPath},
		"no account SID": {AuthToken: testAuthToken, StatusCallback: CallbackURL(testPublicBase)},
	} {
		if _, err := NewCallbackVerifier(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if got := CallbackURL(testPublicBase + "/"); got != testPublicBase+CallbackPath {
		t.Errorf("CallbackURL = %q", got)
	}
}

// TestSendThenCallback follows one message: Send asks for a callback at the
// public URL with the delivery's ids; Twilio signs and posts that URL; the
// handler, reached through another address, verifies it and records a
// receipt that names the delivery and the Message SID Send returned.
func TestSendThenCallback(t *testing.T) {
	t.Parallel()
	f := newFakeTwilio(t, testAccountSID, testAuthToken, nil)
	ch := newChannel(t, testConfig(f.URL))
	msg := channelstest.SampleMessage()
	r, err := ch.Send(t.Context(), endpoint(testTo), msg)
	if err != nil {
		t.Fatal(err)
	}
	cbURL, err := url.Parse(f.received()[0].form.Get("StatusCallback"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	mux := http.NewServeMux()
	mux.Handle("POST "+CallbackPath, CallbackHandler(ch.CallbackVerifier(), rec.record))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	body := url.Values{
		"MessageSid": {r.ProviderID}, "SmsSid": {r.ProviderID}, "AccountSid": {testAccountSID},
		"MessageStatus": {"delivered"}, "SmsStatus": {"delivered"},
		"To": {testTo}, "From": {testFrom}, "ApiVersion": {"2010-04-01"},
	}.Encode()
	if got := post(t, srv, cbURL.RawQuery, form, signed(t, testAuthToken, cbURL.String(), body), body); got != 204 {
		t.Fatalf("status %d", got)
	}
	got := rec.callbacks()
	if len(got) != 1 || got[0].MessageSID != r.ProviderID || got[0].DeliveryID != msg.ID ||
		got[0].SubscriberID != "m_1042" || got[0].EndpointID != "e2" || got[0].Status != StatusDelivered {
		t.Errorf("callbacks = %+v", got)
	}
}
