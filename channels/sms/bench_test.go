package sms

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/channels/channelstest"
)

// benchTwilio is the fake Twilio of the tests, recording nothing.
func benchTwilio(b *testing.B) *fakeTwilio {
	f := newFakeTwilio(b, testAccountSID, testAuthToken, nil)
	f.record = false
	return f
}

func benchChannel(b *testing.B, f *fakeTwilio) *Channel {
	cfg := testConfig(f.URL)
	cfg.Rate = rate.Inf
	return newChannel(b, cfg)
}

// BenchmarkSend measures one SMS send through twilio-go to the fake Twilio,
// to compare with BenchmarkRawPost, a bare net/http POST loop of the same
// request to the same server.
func BenchmarkSend(b *testing.B) {
	f := benchTwilio(b)
	ch := benchChannel(b, f)
	ep, msg := endpoint(testTo), channelstest.SampleMessage()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ch.Send(b.Context(), ep, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSendParallel(b *testing.B) {
	f := benchTwilio(b)
	ch := benchChannel(b, f)
	ep, msg := endpoint(testTo), channelstest.SampleMessage()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ch.Send(b.Context(), ep, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// rawSender posts the form Send posts, with net/http alone.
type rawSender struct {
	c      *http.Client
	target string
	body   string
}

func newRawSender(b *testing.B, f *fakeTwilio) *rawSender {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	b.Cleanup(c.CloseIdleConnections)
	msg := channelstest.SampleMessage()
	return &rawSender{
		c:      c,
		target: f.URL + "/2010-04-01/Accounts/" + testAccountSID + "/Messages.json",
		body: url.Values{
			"To": {testTo}, "From": {testFrom}, "Body": {msg.Text},
			"StatusCallback": {callbackFor(mustParse(b, CallbackURL(testPublicBase)), endpoint(testTo), msg)},
		}.Encode(),
	}
}

func mustParse(b *testing.B, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		b.Fatal(err)
	}
	return u
}

func (s *rawSender) post(b *testing.B) {
	req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, s.target, strings.NewReader(s.body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testAccountSID, testAuthToken)
	resp, err := s.c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

func BenchmarkRawPost(b *testing.B) {
	s := newRawSender(b, benchTwilio(b))
	b.ReportAllocs()
	for b.Loop() {
		s.post(b)
	}
}

func BenchmarkRawPostParallel(b *testing.B) {
	s := newRawSender(b, benchTwilio(b))
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.post(b)
		}
	})
}

// BenchmarkSendVsRaw interleaves one Send and one raw POST per iteration, to
// the same fake Twilio, and reports each one's mean time and Send's
// throughput as a fraction of the raw loop's ("send/raw"): interleaving
// keeps the ratio meaningful on a machine whose load drifts.
func BenchmarkSendVsRaw(b *testing.B) {
	f := benchTwilio(b)
	ch := benchChannel(b, f)
	raw := newRawSender(b, f)
	ep, msg := endpoint(testTo), channelstest.SampleMessage()
	var send, direct time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := ch.Send(b.Context(), ep, msg); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		raw.post(b)
		send += t1.Sub(t0)
		direct += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(send.Nanoseconds())/n, "send-ns/op")
	b.ReportMetric(float64(direct.Nanoseconds())/n, "raw-ns/op")
	b.ReportMetric(float64(direct)/float64(send), "send/raw")
}

// BenchmarkNormalize measures the number check Send makes on every send.
func BenchmarkNormalize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Normalize("+33 6 12 34 56 78"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures checking one signed status callback.
func BenchmarkVerify(b *testing.B) {
	v := newVerifier(b, nil)
	body := "SmsSid=" + testMessageSID + "&SmsStatus=delivered&MessageStatus=delivered&To=%2B33612345678&MessageSid=" +
		testMessageSID + "&AccountSid=" + testAccountSID + "&From=%2B33757000000&ApiVersion=2010-04-01"
	vals, _ := url.ParseQuery(body)
	params := map[string]string{}
	for k, vs := range vals {
		params[k] = vs[0]
	}
	sig := twilioSign(testAuthToken, CallbackURL(testPublicBase)+"?"+callbackQuery, params)
	b.ReportAllocs()
	for b.Loop() {
		req := &http.Request{
			Method: http.MethodPost,
			URL:    &url.URL{Path: CallbackPath, RawQuery: callbackQuery},
			Header: http.Header{"Content-Type": {form}, SignatureHeader: {sig}},
			Body:   io.NopCloser(strings.NewReader(body)),
		}
		if _, err := v.Verify(req); err != nil {
			b.Fatal(err)
		}
	}
}
