package dispatcher

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/sms"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
)

// Twilio credentials of the tests, in Twilio's formats.
const (
	twAccountSID = "AC0123456789abcdef0123456789abcdef"
	twAuthToken  = "f3a9c1e07b5d4e2a9c8b7a6f5e4d3c2b"
	twFrom       = "+33757000000"
)

// twilioRefusal is a Twilio error answer.
type twilioRefusal struct {
	status, code int
	message      string
}

// fakeTwilio speaks the shape of Twilio's Messages API on loopback:
// POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded, HTTP
// basic authentication with the account SID and auth token, JSON answers
// and Twilio error documents. It refuses chosen numbers and accepts the
// others, answering a new message SID.
type fakeTwilio struct {
	*httptest.Server

	mu     sync.Mutex
	refuse map[string]twilioRefusal // by To
	got    []url.Values             // accepted messages
	sids   []string                 // their SIDs
	tries  int                      // every well-formed request
}

func newFakeTwilio(t testing.TB) *fakeTwilio {
	t.Helper()
	f := &fakeTwilio{refuse: map[string]twilioRefusal{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fail := func(rf twilioRefusal) {
		w.WriteHeader(rf.status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"code": rf.code, "message": rf.message, "status": rf.status,
			"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", rf.code),
		})
	}
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+twAccountSID+"/Messages.json" {
		fail(twilioRefusal{404, 20404, "The requested resource was not found"})
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != twAccountSID || p != twAuthToken {
		fail(twilioRefusal{401, 20003, "Authenticate"})
		return
	}
	if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.ParseForm() != nil {
		fail(twilioRefusal{400, 20001, "malformed request"})
		return
	}
	form := r.PostForm
	if form.Get("To") == "" || form.Get("Body") == "" || form.Get("From") == "" {
		fail(twilioRefusal{400, 21604, "A 'To', 'From' and 'Body' are required."})
		return
	}
	f.mu.Lock()
	f.tries++
	rf, refused := f.refuse[form.Get("To")]
	var sid string
	if !refused {
		sid = fmt.Sprintf("SM%032x", len(f.got)+1)
		f.got = append(f.got, form)
		f.sids = append(f.sids, sid)
	}
	f.mu.Unlock()
	if refused {
		fail(rf)
		return
	}
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"account_sid": twAccountSID, "api_version": "2010-04-01", "sid": sid, "status": "queued",
		"to": form.Get("To"), "from": form.Get("From"), "body": form.Get("Body"),
		"direction": "outbound-api", "num_segments": "1", "error_code": nil, "error_message": nil,
		"uri": "/2010-04-01/Accounts/" + twAccountSID + "/Messages/" + sid + ".json",
	})
}

// refuseNumber makes the fake answer rf to every message to phone.
func (f *fakeTwilio) refuseNumber(phone string, rf twilioRefusal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse[phone] = rf
}

// messages returns the accepted messages and their SIDs.
func (f *fakeTwilio) messages() ([]url.Values, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got), slices.Clone(f.sids)
}

// requests is how many well-formed requests were made, refused or not.
func (f *fakeTwilio) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries
}

// count is how many messages were accepted.
func (f *fakeTwilio) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

// newSMSChannel returns the real SMS channel (twilio-go) talking to the
// fake, asking for status callbacks under testPublicURL.
func newSMSChannel(t testing.TB, baseURL string) *sms.Channel {
	t.Helper()
	ch, err := sms.New(sms.Config{
		AccountSID: twAccountSID, AuthToken: secret.Value(twAuthToken), From: twFrom,
		StatusCallback: sms.CallbackURL(testPublicURL), BaseURL: baseURL, Rate: rate.Inf,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.CloseIdleConnections)
	return ch
}

// smsHooks mounts the status callback as herald serve does: verified by the
// channel's verifier, recorded with RecordReceipt, receipts naming no
// delivery of Herald's ignored.
func smsHooks(d *Dispatcher, ch *sms.Channel) map[string]http.Handler {
	return map[string]http.Handler{"POST " + sms.CallbackPath: sms.CallbackHandler(ch.CallbackVerifier(), func(ctx context.Context, cb sms.Callback) error {
		err := d.RecordReceipt(ctx, ProviderReceipt{
			DeliveryID: cb.DeliveryID, SubscriberID: cb.SubscriberID, EndpointID: cb.EndpointID,
			Channel: channels.SMS, ProviderID: cb.MessageSID, Status: string(cb.Status), Err: cb.Err(),
		})
		if errors.Is(err, ErrUnknownDelivery) {
			return nil
		}
		return err
	})}
}

// twilioSignature computes X-Twilio-Signature as Twilio documents it:
// base64 of the HMAC-SHA1, keyed with the auth token, of the full URL
// followed by each POST parameter's name and value, sorted by name.
func twilioSignature(token, fullURL string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		b.WriteString(k + params[k])
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// statusCallback is one callback as Twilio would post it for a message.
type statusCallback struct {
	url    string // the StatusCallback URL the message was sent with
	params map[string]string
	// signedURL, when set, is the URL signed instead of url (a forgery).
	signedURL string
}

func newStatusCallback(callbackURL, sid, to, status string, errorCode int) statusCallback {
	p := map[string]string{
		"AccountSid": twAccountSID, "ApiVersion": "2010-04-01", "From": twFrom, "To": to,
		"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
	}
	if errorCode != 0 {
		p["ErrorCode"] = fmt.Sprint(errorCode)
	}
	return statusCallback{url: callbackURL, params: p}
}

// post sends the callback to srv (where the public URL's path is served),
// signed with token, or unsigned when token is "". tamper changes the
// body after signing.
func (cb statusCallback) post(t testing.TB, srv *httptest.Server, token string, tamper func(url.Values)) int {
	t.Helper()
	u, err := url.Parse(cb.url)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{}
	for k, v := range cb.params {
		form.Set(k, v)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+u.RequestURI(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		signed := cb.url
		if cb.signedURL != "" {
			signed = cb.signedURL
		}
		req.Header.Set(sms.SignatureHeader, twilioSignature(token, signed, cb.params))
	}
	if tamper != nil {
		tamper(form)
	}
	req.Body = io.NopCloser(strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// smsSubscriber returns a French subscriber with an SMS endpoint "sms" and,
// when mail is set, an email endpoint "mail" (for notices).
func smsSubscriber(id, phone, mail string) *subscribers.Subscriber {
	s := &subscribers.Subscriber{ID: id, Name: "Boulangerie Dupont", Locale: "fr-FR", Timezone: "Europe/Paris",
		Endpoints: []subscribers.Endpoint{{ID: "sms", Channel: channels.SMS, Address: phone}}}
	if mail != "" {
		s.Endpoints = append(s.Endpoints, subscribers.Endpoint{ID: "mail", Channel: channels.Email, Address: mail})
	}
	return s
}

// receipts returns the receipt records among recs.
func receipts(recs []Record) []Record {
	var out []Record
	for _, r := range recs {
		if r.Outcome == Receipt {
			out = append(out, r)
		}
	}
	return out
}

// TestSMSEndToEndReceipts: a corpus update goes out through the real SMS
// channel (twilio-go) to a Twilio-shaped server, its SID recorded; Twilio's
// signed status callbacks, posted to the route herald serve mounts, land in
// the delivery log; unsigned or altered ones are refused; an "undelivered"
// callback with 21610 (STOP) suppresses the number, so the next update is
// recorded, not sent.
func TestSMSEndToEndReceipts(t *testing.T) {
	t.Parallel()
	const phone = "+33612345678"
	tw := newFakeTwilio(t)
	ch := newSMSChannel(t, tw.URL)
	b := setup(t, bundleOpts{
		cfg:      func(c *Config) { c.PublicURL = testPublicURL },
		channels: map[string]channels.Channel{channels.SMS: ch},
	})
	srv := b.servePublic(smsHooks(b.d, ch))
	sub := smsSubscriber("m_sms", phone, "")
	b.putSubscriber(sub)

	first := corpusEvent(t, "TSR-1723:1")
	id := DeliveryID("TSR-1723:1", sub.ID, "sms")
	b.publish(first)
	b.waitFor("the SMS delivered", 20*time.Second, func() bool { return b.lastOutcome(sub.ID, id) == Delivered })
	forms, sids := tw.messages()
	if len(forms) != 1 {
		t.Fatalf("Twilio got %d messages, want 1", len(forms))
	}
	form, sid := forms[0], sids[0]
	want := b.renderFor(first, channels.SMS, sub).Text
	if form.Get("To") != phone || form.Get("From") != twFrom || form.Get("Body") != want || !strings.Contains(want, "Sous surveillance") {
		t.Errorf("Twilio got To=%q From=%q Body=%q; want the French SMS %q", form.Get("To"), form.Get("From"), form.Get("Body"), want)
	}
	recs := b.delivery(sub.ID, id)
	if len(recs) != 1 || recs[0].ProviderID != sid || recs[0].Status != http.StatusCreated || recs[0].Locale != "fr" {
		t.Fatalf("records %+v, want one delivery with SID %s", recs, sid)
	}
	// The callback URL names the delivery, subscriber and endpoint.
	cbURL := form.Get("StatusCallback")
	u, err := url.Parse(cbURL)
	if err != nil || !strings.HasPrefix(cbURL, sms.CallbackURL(testPublicURL)+"?") ||
		u.Query().Get("delivery") != id || u.Query().Get("subscriber") != sub.ID || u.Query().Get("endpoint") != "sms" {
		t.Fatalf("StatusCallback %q", cbURL)
	}

	for _, status := range []string{"sent", "delivered"} {
		if code := newStatusCallback(cbURL, sid, phone, status, 0).post(t, srv, twAuthToken, nil); code != http.StatusNoContent {
			t.Fatalf("signed %q callback: %d, want 204", status, code)
		}
	}
	got := receipts(b.records(sub.ID))
	if len(got) != 2 || got[0].Reason != "sent" || got[1].Reason != "delivered" {
		t.Fatalf("receipts in the delivery log: %+v", got)
	}
	for _, r := range got {
		if r.DeliveryID != id || r.ProviderID != sid || r.EndpointID != "sms" || r.Channel != channels.SMS {
			t.Errorf("receipt %+v", r)
		}
	}

	t.Run("refused callbacks", func(t *testing.T) {
		cb := newStatusCallback(cbURL, sid, phone, "failed", 30003)
		for name, post := range map[string]func() int{
			"unsigned":  func() int { return cb.post(t, srv, "", nil) },
			"wrong key": func() int { return cb.post(t, srv, strings.Repeat("0", 32), nil) },
			"altered status": func() int {
				return cb.post(t, srv, twAuthToken, func(f url.Values) { f.Set("MessageStatus", "delivered") })
			},
			"another account": func() int {
				// Well signed, but about a message of another account.
				other := newStatusCallback(cbURL, sid, phone, "failed", 30003)
				other.params["AccountSid"] = "AC" + strings.Repeat("f", 32)
				return other.post(t, srv, twAuthToken, nil)
			},
			"other delivery": func() int {
				// Signed for this delivery's URL, posted to another's.
				moved := cb
				moved.signedURL = cbURL
				moved.url = strings.Replace(cbURL, "subscriber="+sub.ID, "subscriber=m_other", 1)
				return moved.post(t, srv, twAuthToken, nil)
			},
		} {
			if code := post(); code != http.StatusForbidden {
				t.Errorf("%s callback: %d, want 403", name, code)
			}
		}
		if n := len(receipts(b.records(sub.ID))); n != 2 {
			t.Fatalf("%d receipts after refused callbacks, want 2", n)
		}
		if n := len(b.records("m_other")); n != 0 {
			t.Fatalf("a forged callback wrote %d records", n)
		}
	})

	// The recipient replied STOP: the carrier reports 21610.
	if code := newStatusCallback(cbURL, sid, phone, "undelivered", 21610).post(t, srv, twAuthToken, nil); code != http.StatusNoContent {
		t.Fatalf("undelivered callback: %d", code)
	}
	b.waitFor("the number suppressed", 10*time.Second, func() bool { return b.d.Suppressions().Contains(channels.SMS, phone) })
	last := receipts(b.records(sub.ID))
	if r := last[len(last)-1]; r.Code != "21610" || r.Action != channels.SuppressAddress.String() || !strings.HasPrefix(r.Reason, "undelivered") {
		t.Errorf("STOP receipt %+v", r)
	}
	list, err := b.d.Suppressions().List(b.ctx)
	if err != nil || len(list) != 1 || list[0].Channel != channels.SMS || list[0].Address != phone || !strings.Contains(list[0].Reason, "21610") {
		t.Fatalf("suppressions %+v (%v)", list, err)
	}
	second := DeliveryID("TSR-1723:2", sub.ID, "sms")
	b.publish(corpusEvent(t, "TSR-1723:2"))
	b.waitFor("the next SMS suppressed", 20*time.Second, func() bool { return b.lastOutcome(sub.ID, second) == Suppressed })
	if n := tw.count(); n != 1 {
		t.Fatalf("Twilio got %d messages, want 1: the number is suppressed", n)
	}
	noAddressIn(t, b.records(sub.ID), phone)
	if strings.Contains(b.logs.String(), twAuthToken) {
		t.Error("the auth token leaked into the logs")
	}
}

// TestSMSInvalidNumberDisablesEndpoint: Twilio refuses the number with
// 21211 at send time: the failure is permanent, the endpoint is disabled
// (and left out of later updates), and the subscriber is told by email.
func TestSMSInvalidNumberDisablesEndpoint(t *testing.T) {
	t.Parallel()
	const phone = "+33612345679"
	tw := newFakeTwilio(t)
	tw.refuseNumber(phone, twilioRefusal{400, 21211, "The 'To' number " + phone + " is not a valid phone number."})
	b := setup(t, bundleOpts{
		cfg:      func(c *Config) { c.PublicURL = testPublicURL },
		channels: map[string]channels.Channel{channels.SMS: newSMSChannel(t, tw.URL)},
	})
	sub := smsSubscriber("m_bad", phone, "ops@dupont.example")
	b.putSubscriber(sub)
	id := DeliveryID("INC-21211:1", sub.ID, "sms")
	b.publish(event("INC-21211", 1, "investigating"))
	// The endpoint is disabled as the answer comes; its record is stored
	// with the job's others (group commit), a moment later.
	b.waitFor("the endpoint disabled and its failure recorded", 20*time.Second, func() bool {
		s, _, err := b.d.store.Get(b.ctx, sub.ID)
		return err == nil && s.Endpoint("sms").Disabled != nil && len(b.delivery(sub.ID, id)) > 0
	})
	recs := b.delivery(sub.ID, id)
	if len(recs) != 1 || recs[0].Outcome != Failed || recs[0].Status != 400 || recs[0].Code != "21211" || recs[0].Action != channels.DisableEndpoint.String() {
		t.Fatalf("records %+v, want one failure 400/21211 that disabled the endpoint", recs)
	}
	noAddressIn(t, b.records(sub.ID), phone)
	s, _, _ := b.d.store.Get(b.ctx, sub.ID)
	if r := s.Endpoint("sms").Disabled.Reason; !strings.Contains(r, "21211") {
		t.Errorf("disabled reason %q does not name Twilio's code", r)
	}
	if s.Endpoint("mail").Disabled != nil {
		t.Error("the email endpoint was disabled too")
	}
	// The notice: the update's email, then one telling why the SMS
	// endpoint stopped.
	mailDir := filepath.Join(b.outbox, channels.Email)
	b.waitFor("the notice in the email outbox", 10*time.Second, func() bool { return len(outboxFiles(t, mailDir)) == 2 })
	notices := 0
	for _, p := range outboxFiles(t, mailDir) {
		data, _ := os.ReadFile(p)
		text := strings.NewReplacer("=\r\n", "", "=\n", "").Replace(string(data)) // undo quoted-printable soft breaks
		if strings.Contains(text, "21211") && strings.Contains(text, "SMS") {
			notices++
		}
	}
	if notices != 1 {
		t.Errorf("%d emails in the outbox tell about the 21211 refusal, want 1", notices)
	}
	// A later update leaves the disabled endpoint out.
	b.waitFor("the index to drop the endpoint", 10*time.Second, func() bool {
		for _, tg := range b.d.index.Audience(subscribers.Query{Status: "resolved"}) {
			if tg.SubscriberID == sub.ID && tg.EndpointID == "sms" {
				return false
			}
		}
		return true
	})
	b.publish(event("INC-21211", 2, "resolved"))
	b.waitFor("the second update's email", 10*time.Second, func() bool { return len(outboxFiles(t, mailDir)) == 3 })
	if tries := tw.requests(); tries != 1 {
		t.Fatalf("Twilio was asked %d times, want 1", tries)
	}
}

// quietHoursBundle runs a dispatcher with a Twilio-shaped SMS channel and a
// clock one second before 07:00 in Paris, and stores a subscriber whose SMS
// endpoint is quiet from 22:00 to 07:00.
func quietHoursBundle(t *testing.T, id string) (*testBundle, *testClock, *fakeTwilio, *subscribers.Subscriber, *time.Location) {
	t.Helper()
	paris := mustLocation(t, "Europe/Paris")
	clock := &testClock{}
	clock.Set(wallClock(paris, 1, 6, 59, 59))
	tw := newFakeTwilio(t)
	b := setup(t, bundleOpts{
		cfg: func(c *Config) {
			c.PublicURL, c.Now, c.Rand = testPublicURL, clock.Now, noJitter
			patientDeferrals(c, channels.SMS)
		},
		channels: map[string]channels.Channel{channels.SMS: newSMSChannel(t, tw.URL)},
	})
	sub := smsSubscriber(id, "+33612345678", "")
	sub.Endpoints[0].QuietHours = &subscribers.QuietHours{Start: "22:00", End: "07:00"}
	b.putSubscriber(sub)
	return b, clock, tw, sub, paris
}

// TestSMSQuietHours: during the endpoint's quiet hours (in the subscriber's
// time zone), a non-P1 SMS is deferred to the window's end, never dropped,
// while a P1 goes through; once the window ends the deferred SMS is sent.
// The clock is injected: no test waits for hours.
func TestSMSQuietHours(t *testing.T) {
	t.Parallel()
	b, clock, tw, sub, paris := quietHoursBundle(t, "m_night")

	calm := DeliveryID("INC-QH:1", sub.ID, "sms")
	b.publish(event("INC-QH", 1, "investigating")) // unrated: P3
	b.waitFor("the deferral", 20*time.Second, func() bool { return b.lastOutcome(sub.ID, calm) == Deferred })
	r := b.delivery(sub.ID, calm)[0]
	if end := wallClock(paris, 1, 7, 0, 0); r.Reason != "quiet hours" || r.NextAttemptAt == nil || !r.NextAttemptAt.Equal(end) {
		t.Fatalf("deferral %+v, want quiet hours until %v", r, end.UTC())
	}

	urgent := DeliveryID("INC-P1:1", sub.ID, "sms")
	b.publish(event("INC-P1", 1, "investigating", "priority", "P1"))
	b.waitFor("the P1 SMS", 20*time.Second, func() bool { return b.lastOutcome(sub.ID, urgent) == Delivered })
	if got := outcomeList(b.delivery(sub.ID, urgent)); got != "delivered" {
		t.Fatalf("P1 outcomes %s, want delivered at once", got)
	}
	// While the clock stays inside the window the job stays parked: it
	// comes back, is not due yet, and goes back; never dropped, never sent.
	b.waitFor("the parked job back and parked again", 20*time.Second, func() bool {
		info := b.parked(channels.SMS)
		return info.NumAckPending == 1 && info.Delivered.Consumer >= 2
	})
	if n := tw.count(); n != 1 {
		t.Fatalf("Twilio got %d messages inside quiet hours, want 1 (the P1)", n)
	}

	clock.Set(wallClock(paris, 1, 7, 0, 1))
	b.waitFor("the deferred SMS after the window", 20*time.Second, func() bool { return b.lastOutcome(sub.ID, calm) == Delivered })
	recs := b.delivery(sub.ID, calm)
	for _, r := range recs[:len(recs)-1] {
		if r.Outcome != Deferred {
			t.Fatalf("outcomes %s, want deferrals then delivered", outcomeList(recs))
		}
	}
	forms, _ := tw.messages()
	if len(forms) != 2 || !strings.Contains(forms[0].Get("StatusCallback"), urgent) || !strings.Contains(forms[1].Get("StatusCallback"), calm) {
		t.Fatalf("Twilio messages in the wrong order or number: %d", len(forms))
	}
}

// TestSMSSupersededWhileDeferred: an SMS held by quiet hours is overtaken
// by a newer update of the same incident; when the window ends only the
// newer one goes out and the older is recorded superseded ("latest only").
func TestSMSSupersededWhileDeferred(t *testing.T) {
	t.Parallel()
	b, clock, tw, sub, paris := quietHoursBundle(t, "m_late")

	older, newer := DeliveryID("INC-LO:1", sub.ID, "sms"), DeliveryID("INC-LO:2", sub.ID, "sms")
	b.publish(event("INC-LO", 1, "investigating"))
	b.waitFor("the first deferral", 20*time.Second, func() bool { return b.lastOutcome(sub.ID, older) == Deferred })
	newEv := event("INC-LO", 2, "resolved")
	b.publish(newEv)
	b.waitFor("the second deferral", 20*time.Second, func() bool { return b.lastOutcome(sub.ID, newer) == Deferred })

	clock.Set(wallClock(paris, 1, 7, 0, 1))
	b.waitFor("both settled", 20*time.Second, func() bool {
		return b.lastOutcome(sub.ID, older) == Superseded && b.lastOutcome(sub.ID, newer) == Delivered
	})
	recs := b.delivery(sub.ID, older)
	if r := recs[len(recs)-1]; r.Reason != "superseded by update 2" {
		t.Errorf("superseded record %+v", r)
	}
	b.settled()
	forms, _ := tw.messages()
	if len(forms) != 1 {
		t.Fatalf("Twilio got %d messages, want 1 (the newer update)", len(forms))
	}
	if want := b.renderFor(newEv, channels.SMS, sub).Text; forms[0].Get("Body") != want {
		t.Errorf("the SMS sent is %q, want the newer update's %q", forms[0].Get("Body"), want)
	}
}
