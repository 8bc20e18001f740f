package slack

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
)

// hookRequest is what an incoming-webhook receiver got.
type hookRequest struct {
	path   string
	header http.Header
	body   []byte
}

// hookReceiver is an incoming webhook on 127.0.0.1: it answers "ok" as
// Slack does, or status and body when set.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []hookRequest
	status int
	answer string
}

func newHookReceiver(t testing.TB) *hookReceiver {
	t.Helper()
	r := &hookReceiver{status: http.StatusOK, answer: "ok"}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, hookRequest{path: req.URL.Path, header: req.Header.Clone(), body: body})
		status, answer := r.status, r.answer
		r.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) requests() []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookRequest(nil), r.reqs...)
}

// TestWebhookPostsEachUpdate: webhook mode posts each update's rendered
// message as is, one message per update, no thread.
func TestWebhookPostsEachUpdate(t *testing.T) {
	t.Parallel()
	rcv := newHookReceiver(t)
	ch := newChannel(t, webhookConfig(t))
	ups := corpusIncident(t)
	ep := channels.Endpoint{ID: "e3", Address: hookURL(rcv.URL)}
	for _, u := range ups {
		r, err := ch.Send(t.Context(), ep, u.message())
		if err != nil {
			t.Fatalf("update %d: %v", u.Sequence, err)
		}
		if r.Status != 200 || r.Detail != "slack webhook "+strings.TrimPrefix(rcv.URL, "http://") {
			t.Errorf("receipt %+v", r)
		}
	}
	reqs := rcv.requests()
	if len(reqs) != len(ups) {
		t.Fatalf("%d posts for %d updates", len(reqs), len(ups))
	}
	for i, req := range reqs {
		if !bytes.Equal(req.body, ups[i].Body) {
			t.Errorf("post %d: body differs from the rendered message", i)
		}
		if req.path != "/services/T0TEST01/B0TEST02/"+hookToken {
			t.Errorf("post %d: path %q", i, req.path)
		}
		if ct := req.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("post %d: Content-Type %q", i, ct)
		}
		if req.header.Get("Authorization") != "" {
			t.Errorf("post %d: credentials sent", i)
		}
	}
}

// webhookCases is the contract table for incoming webhooks: Herald's HTTP
// table, where 404 means the webhook is gone, and Slack's own answers.
func webhookCases() []channelstest.Case {
	disable := channels.Classification{Permanent: true, Action: channels.DisableEndpoint}
	permanent := channels.Classification{Permanent: true}
	var cases []channelstest.Case
	for _, c := range channelstest.HTTPCases() {
		if c.Answer.Status == http.StatusNotFound {
			c.Name = "404 echoing the request disables the endpoint"
			c.Want = disable
		}
		cases = append(cases, c)
	}
	return append(cases,
		channelstest.Case{Name: "404 no_service disables", Answer: channelstest.Answer{Status: 404, Body: "no_service"}, Want: disable},
		channelstest.Case{Name: "404 channel_not_found disables", Answer: channelstest.Answer{Status: 404, Body: "channel_not_found"}, Want: disable},
		channelstest.Case{Name: "410 channel_is_archived disables", Answer: channelstest.Answer{Status: 410, Body: "channel_is_archived"}, Want: disable},
		channelstest.Case{Name: "403 invalid_token disables", Answer: channelstest.Answer{Status: 403, Body: "invalid_token"}, Want: disable},
		channelstest.Case{Name: "404 team_disabled disables", Answer: channelstest.Answer{Status: 404, Body: "team_disabled"}, Want: disable},
		channelstest.Case{Name: "400 invalid_payload permanent", Answer: channelstest.Answer{Status: 400, Body: "invalid_payload"}, Want: permanent},
		channelstest.Case{Name: "403 action_prohibited permanent", Answer: channelstest.Answer{Status: 403, Body: "action_prohibited"}, Want: permanent},
		channelstest.Case{Name: "400 echoing the token permanent", Answer: channelstest.Answer{Status: 400, Body: "invalid_payload for", Echo: true}, Want: permanent},
		channelstest.Case{Name: "429 ratelimited with Retry-After", Answer: channelstest.Answer{Status: 429, Body: "ratelimited", Header: map[string]string{"Retry-After": "30"}}, Want: channels.Classification{After: 30 * time.Second}},
		channelstest.Case{Name: "503 service_unavailable retryable", Answer: channelstest.Answer{Status: 503, Body: "service_unavailable"}},
		channelstest.Case{Name: "200 ok delivered", Answer: channelstest.Answer{Status: 200, Body: "ok"}, Delivered: true},
	)
}

// TestContract runs webhook mode through the contract suite every channel
// passes.
func TestContract(t *testing.T) {
	t.Parallel()
	body := corpusIncident(t)[0].message()
	channelstest.Run(t, channelstest.Harness{
		New: func(t *testing.T, a channelstest.Answer, logger *slog.Logger) channelstest.Target {
			p := channelstest.NewHTTPProvider(t, a)
			cfg := webhookConfig(t)
			cfg.Logger = logger
			cfg.PerChannelInterval = 0 // the default limiter: one send per case
			return channelstest.Target{
				Channel:  newChannel(t, cfg),
				Endpoint: channels.Endpoint{SubscriberID: "m_1042", ID: "e3", Address: hookURL(p.URL)},
				Attempts: p.Requests,
				Content:  p.LastBody,
			}
		},
		Cases:   webhookCases(),
		Secrets: []string{hookToken, "/services/T0TEST01/B0TEST02/" + hookToken},
		Message: func() *channels.Message {
			m := channelstest.SampleMessage()
			m.Body, m.Parent = body.Body, body.Parent
			return m
		},
	})
}

// TestWebhookOutcomes checks the Slack codes and explanations the delivery
// log keeps.
func TestWebhookOutcomes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status      int
		body        string
		code, words string
	}{
		{404, "no_service", "no_service", "incoming webhook was removed"},
		{410, "channel_is_archived", "channel_is_archived", "archived"},
		{403, "invalid_token", "invalid_token", "token is invalid"},
		{400, "invalid_payload", "invalid_payload", ""},
		{400, `{"ok":false,"error":"invalid_blocks"}`, "invalid_blocks", "refused the blocks"},
		{500, "<html><body>Internal error</body></html>", "", "Internal error"},
	} {
		rcv := newHookReceiver(t)
		rcv.status, rcv.answer = tc.status, tc.body
		ch := newChannel(t, webhookConfig(t))
		_, err := ch.Send(t.Context(), channels.Endpoint{Address: hookURL(rcv.URL)}, corpusIncident(t)[0].message())
		var pe *channels.ProviderError
		if !errors.As(err, &pe) || pe.Status != tc.status || pe.Code != tc.code || !strings.Contains(pe.Message, tc.words) {
			t.Errorf("%d %s: err = %v (%+v)", tc.status, tc.body, err, pe)
		}
	}
}

func TestWebhookAddresses(t *testing.T) {
	t.Parallel()
	rcv := newHookReceiver(t)
	strict := newChannel(t, Config{PerChannelInterval: -1})
	local := newChannel(t, webhookConfig(t))
	msg := corpusIncident(t)[0].message()
	host := strings.TrimPrefix(rcv.URL, "http://")
	for _, tc := range []struct {
		name string
		ch   *Channel
		addr string
	}{
		{"http", strict, "http://hooks.slack.com/services/T0/B0/" + hookToken},
		{"not a Slack host", strict, "https://hooks.example.com/services/T0/B0/" + hookToken},
		{"look-alike host", strict, "https://hooks.slack.com.example.com/services/T0/B0/" + hookToken},
		{"credentials", strict, "https://user:" + hookToken + "@hooks.slack.com/services/T0/B0/x"},
		{"no path", strict, "https://hooks.slack.com/"},
		{"malformed", strict, "https://hooks.slack.com/services/%zz/" + hookToken},
		{"receiver not allowed by default", strict, hookURL(rcv.URL)},
		{"bad port", local, "http://127.0.0.1:99999/services/T0/B0/" + hookToken},
		{"other scheme", local, "ftp://" + host + "/services/T0/B0/" + hookToken},
	} {
		_, err := tc.ch.Send(t.Context(), channels.Endpoint{Address: tc.addr}, msg)
		if c := channels.Classify(err); !errors.Is(err, ErrInvalidAddress) || !c.Permanent {
			t.Errorf("%s: err = %v, want a permanent ErrInvalidAddress", tc.name, err)
		}
		if err != nil && strings.Contains(err.Error(), hookToken) {
			t.Errorf("%s: the error quotes the URL: %v", tc.name, err)
		}
	}
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("%d requests reached the receiver", n)
	}
}

// TestWebhookSSRFGuard: a webhook host the configuration allows but whose
// address the egress client refuses is never reached.
func TestWebhookSSRFGuard(t *testing.T) {
	t.Parallel()
	rcv := newHookReceiver(t)
	cfg := webhookConfig(t)
	cfg.HTTPClient = nil // the default egress client: loopback refused
	ch := newChannel(t, cfg)
	_, err := ch.Send(t.Context(), channels.Endpoint{Address: hookURL(rcv.URL)}, corpusIncident(t)[0].message())
	if !channels.Classify(err).Permanent || strings.Contains(err.Error(), hookToken) {
		t.Errorf("err = %v, want a permanent refusal naming the host only", err)
	}
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("%d requests reached the receiver", n)
	}
}

// TestWebhookRateLimit: two messages to one webhook within the interval;
// the second is handed back with the delay.
func TestWebhookRateLimit(t *testing.T) {
	t.Parallel()
	rcv := newHookReceiver(t)
	clock := newFakeClock()
	cfg := webhookConfig(t)
	cfg.PerChannelInterval, cfg.Now = 10*time.Minute, clock.Now
	ch := newChannel(t, cfg)
	ups := corpusIncident(t)
	ep := channels.Endpoint{Address: hookURL(rcv.URL)}
	if _, err := ch.Send(t.Context(), ep, ups[0].message()); err != nil {
		t.Fatal(err)
	}
	_, err := ch.Send(t.Context(), ep, ups[1].message())
	if c := channels.Classify(err); !errors.Is(err, ErrRateLimited) || c.Permanent || c.After < 9*time.Minute {
		t.Errorf("err = %v (%+v), want ErrRateLimited after about 10 min", err, c)
	}
	if _, err := ch.Send(t.Context(), channels.Endpoint{Address: hookURL(rcv.URL) + "2"}, ups[1].message()); err != nil {
		t.Errorf("another webhook: %v", err)
	}
	clock.Add(10 * time.Minute)
	if _, err := ch.Send(t.Context(), ep, ups[1].message()); err != nil {
		t.Errorf("10 minutes later: %v", err)
	}
	if n := len(rcv.requests()); n != 3 {
		t.Errorf("%d posts, want 3", n)
	}
}

// TestRateLimitWaits: a turn within MaxRateWait is waited for, not handed
// back.
func TestRateLimitWaits(t *testing.T) {
	t.Parallel()
	rcv := newHookReceiver(t)
	cfg := webhookConfig(t)
	cfg.PerChannelInterval = 20 * time.Millisecond
	ch := newChannel(t, cfg)
	ep := channels.Endpoint{Address: hookURL(rcv.URL)}
	for _, u := range corpusIncident(t)[:3] {
		if _, err := ch.Send(t.Context(), ep, u.message()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(rcv.requests()); n != 3 {
		t.Errorf("%d posts, want 3", n)
	}
}

// TestWebhookLogsMaskTheURL: debug logs name the webhook by a masked form.
func TestWebhookLogsMaskTheURL(t *testing.T) {
	t.Parallel()
	rcv := newHookReceiver(t)
	var logs bytes.Buffer
	cfg := webhookConfig(t)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ch := newChannel(t, cfg)
	if _, err := ch.Send(t.Context(), channels.Endpoint{Address: hookURL(rcv.URL)}, corpusIncident(t)[0].message()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, hookToken) || strings.Contains(out, "/services/") {
		t.Errorf("logs show the URL: %s", out)
	}
	if want := "webhook=" + rcv.URL + "/…" + hookToken[len(hookToken)-4:]; !strings.Contains(out, want) {
		t.Errorf("logs %q lack the masked URL %q", out, want)
	}
}
