package webhook

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/channels/channelstest"
)

// benchReceiver answers 200 "ok" after reading the body.
func benchReceiver(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkSend measures a signed webhook delivery end to end, to compare
// with BenchmarkRawPost, a bare net/http POST loop to the same receiver.
func BenchmarkSend(b *testing.B) {
	srv := benchReceiver(b)
	ch := newChannel(b, testConfig())
	ep := endpoint(srv.URL+"/hooks/status", testSecret)
	msg := channelstest.SampleMessage()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg.Body)))
	for b.Loop() {
		if _, err := ch.Send(b.Context(), ep, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSendParallel(b *testing.B) {
	srv := benchReceiver(b)
	ch := newChannel(b, testConfig())
	ep := endpoint(srv.URL+"/hooks/status", testSecret)
	msg := channelstest.SampleMessage()
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

func rawClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

func rawPost(b *testing.B, c *http.Client, url string, body []byte) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

func BenchmarkRawPost(b *testing.B) {
	srv := benchReceiver(b)
	c := rawClient()
	b.Cleanup(c.CloseIdleConnections)
	body := channelstest.SampleMessage().Body
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rawPost(b, c, srv.URL+"/hooks/status", body)
	}
}

func BenchmarkRawPostParallel(b *testing.B) {
	srv := benchReceiver(b)
	c := rawClient()
	b.Cleanup(c.CloseIdleConnections)
	body := channelstest.SampleMessage().Body
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rawPost(b, c, srv.URL+"/hooks/status", body)
		}
	})
}

// BenchmarkSign and BenchmarkSignLibrary compare Herald's signer with the
// Standard Webhooks library's Sign on a 20 kB payload (the size the
// specification recommends staying under).
func BenchmarkSign(b *testing.B) {
	sg, err := parseSecret(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 20000)
	ts := time.Now().Unix()
	b.ReportAllocs()
	for b.Loop() {
		_ = sg.sign("dlv_5c1f0e9a7b3d4e21", ts, body)
	}
}

func BenchmarkSignLibrary(b *testing.B) {
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 20000)
	ts := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = wh.Sign("dlv_5c1f0e9a7b3d4e21", ts, body)
	}
}
