package slack

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
)

// benchReceiver is an incoming webhook that answers "ok" after reading the
// body, as Slack does.
func benchReceiver(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkWebhookSend measures a webhook-mode delivery end to end (URL
// cache, limits check, limiter off, POST, answer), to compare with
// BenchmarkRawPost, a bare net/http POST loop to the same receiver.
func BenchmarkWebhookSend(b *testing.B) {
	benchmarkWebhookSend(b, -1)
}

// BenchmarkWebhookSendLimiter is the same with the per-channel limiter on,
// at an interval short enough never to wait: its bookkeeping only.
func BenchmarkWebhookSendLimiter(b *testing.B) {
	benchmarkWebhookSend(b, time.Nanosecond)
}

func benchmarkWebhookSend(b *testing.B, interval time.Duration) {
	srv := benchReceiver(b)
	cfg := webhookConfig(b)
	cfg.PerChannelInterval = interval
	ch := newChannel(b, cfg)
	msg := corpusIncident(b)[0].message()
	ep := channels.Endpoint{Address: hookURL(srv.URL)}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg.Body)))
	for b.Loop() {
		if _, err := ch.Send(b.Context(), ep, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawPost(b *testing.B) {
	srv := benchReceiver(b)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	b.Cleanup(c.CloseIdleConnections)
	body := corpusIncident(b)[0].Body
	url := hookURL(srv.URL)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		resp, err := c.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}

// BenchmarkCheckMessage measures the limits check of a rendered message.
func BenchmarkCheckMessage(b *testing.B) {
	body := corpusIncident(b)[0].Body
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := checkMessage("body", body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBotThreadedUpdate measures bot-mode updates end to end: thread
// lookup and lease in JetStream KV, the reply, its record, the parent edit
// and its record, against slacktest behind its recorder. A new incident
// starts every 100 updates (its parent post is included), so that records
// stay the size real incidents have.
func BenchmarkBotThreadedUpdate(b *testing.B) {
	api := newSlackAPI(b)
	ch := newChannel(b, botConfig(api, NewKVThreads(newBucket(b))))
	ups := corpusIncident(b)
	ep := channels.Endpoint{Address: channelID}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		msg := ups[1].message()
		msg.IncidentID = fmt.Sprintf("BENCH-%d", i/100)
		msg.Sequence = int64(i%100 + 1)
		msg.ID = fmt.Sprintf("dlv_%s_%d", msg.IncidentID, msg.Sequence)
		i++
		if _, err := ch.Send(b.Context(), ep, msg); err != nil {
			b.Fatal(err)
		}
	}
}
