package channelstest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
)

// HTTPProvider is a fake HTTP provider that gives every request the same
// scripted [Answer].
type HTTPProvider struct {
	// URL is the provider's base URL (http://127.0.0.1:port). For a
	// [Refuse] answer nothing listens there.
	URL      string
	requests atomic.Int64

	mu   sync.Mutex
	body []byte
	form url.Values
}

// Requests returns how many requests the provider received.
func (p *HTTPProvider) Requests() int { return int(p.requests.Load()) }

// LastBody returns the body of the last request received (nil: none).
func (p *HTTPProvider) LastBody() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.body
}

// LastForm returns the value of the form field name in the last request
// received, as bytes (a form-encoded API's content: Twilio's Body).
func (p *HTTPProvider) LastForm(name string) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.form[name]; ok && len(v) > 0 {
		return []byte(v[0])
	}
	return nil
}

// NewHTTPProvider starts a fake provider on 127.0.0.1 that answers every
// request with a: a's status, headers and body (followed by the request
// target if a.Echo); for a [Hang] answer it reads the request and never
// answers, until the client goes away or the test ends; for a [Refuse]
// answer its URL points at a closed port. It stops when t ends.
func NewHTTPProvider(t testing.TB, a Answer) *HTTPProvider {
	t.Helper()
	p := &HTTPProvider{}
	if a.Fault == Refuse {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.URL = "http://" + ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		p.mu.Lock()
		p.body, p.form = body, form
		p.mu.Unlock()
		if a.Fault == Hang {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		for k, v := range a.Header {
			w.Header().Set(k, v)
		}
		status := a.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, a.Body)
		if a.Echo {
			_, _ = io.WriteString(w, " "+r.URL.RequestURI())
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: frees hanging handlers
	p.URL = srv.URL
	return p
}

// HTTPCases returns the contract table for channels that call a
// provider's HTTP API (Twilio, Slack), following how Herald reads such an
// API's answers ([channels.HTTPStatusError]): 2xx delivered; 3xx permanent
// (redirects are not followed); 410 permanent and the endpoint disabled;
// 408, 425, 429 and 5xx retryable, honouring Retry-After; other 4xx
// permanent; a refused connection and a provider that never answers
// retryable. Some answers echo the request target or carry a huge or
// control-laden body, as hostile receivers do. A channel whose provider
// means something else by a status (e.g. a 200 carrying an error) appends
// or replaces cases. Receivers merchants run follow [WebhookCases]
// instead.
func HTTPCases() []Case {
	retry := channels.Classification{}
	permanent := channels.Classification{Permanent: true}
	return []Case{
		{Name: "200 delivered", Answer: Answer{Status: 200, Body: "ok"}, Delivered: true},
		{Name: "201 delivered", Answer: Answer{Status: 201}, Delivered: true},
		{Name: "202 delivered", Answer: Answer{Status: 202}, Delivered: true},
		{Name: "204 delivered", Answer: Answer{Status: 204}, Delivered: true},
		{Name: "200 with a huge body delivered", Answer: Answer{Status: 200, Body: strings.Repeat("x", 1<<20)}, Delivered: true},
		{Name: "301 permanent", Answer: Answer{Status: 301, Header: map[string]string{"Location": "/moved"}}, Want: permanent},
		{Name: "302 permanent", Answer: Answer{Status: 302, Header: map[string]string{"Location": "/elsewhere"}}, Want: permanent},
		{Name: "307 permanent", Answer: Answer{Status: 307, Header: map[string]string{"Location": "/elsewhere"}}, Want: permanent},
		{Name: "308 permanent", Answer: Answer{Status: 308, Header: map[string]string{"Location": "/elsewhere"}}, Want: permanent},
		{Name: "400 permanent", Answer: Answer{Status: 400, Body: `{"error":"bad payload"}`}, Want: permanent},
		{Name: "401 permanent", Answer: Answer{Status: 401, Body: "unauthorized"}, Want: permanent},
		{Name: "403 permanent", Answer: Answer{Status: 403, Body: "forbidden", Echo: true}, Want: permanent},
		{Name: "404 echoing the request permanent", Answer: Answer{Status: 404, Body: "no route for", Echo: true}, Want: permanent},
		{Name: "405 permanent", Answer: Answer{Status: 405}, Want: permanent},
		{Name: "413 permanent", Answer: Answer{Status: 413, Body: "payload too large"}, Want: permanent},
		{Name: "422 permanent", Answer: Answer{Status: 422, Body: `{"errors":["invalid"]}`}, Want: permanent},
		{Name: "410 disables the endpoint", Answer: Answer{Status: 410, Body: "gone"}, Want: channels.Classification{Permanent: true, Action: channels.DisableEndpoint}},
		{Name: "408 retryable", Answer: Answer{Status: 408}, Want: retry},
		{Name: "425 retryable", Answer: Answer{Status: 425}, Want: retry},
		{Name: "429 retryable", Answer: Answer{Status: 429, Body: "slow down"}, Want: retry},
		{Name: "429 with Retry-After", Answer: Answer{Status: 429, Header: map[string]string{"Retry-After": "7"}}, Want: channels.Classification{After: 7 * time.Second}},
		{Name: "500 retryable", Answer: Answer{Status: 500, Body: "internal error", Echo: true}, Want: retry},
		{Name: "500 with a huge body retryable", Answer: Answer{Status: 500, Body: strings.Repeat("error ", 200000)}, Want: retry},
		{Name: "500 with control characters retryable", Answer: Answer{Status: 500, Body: "line1\r\nline2\x1b[31mred\x00\tend"}, Want: retry},
		{Name: "502 retryable", Answer: Answer{Status: 502, Body: "<html>bad gateway</html>"}, Want: retry},
		{Name: "503 retryable", Answer: Answer{Status: 503}, Want: retry},
		{Name: "503 with Retry-After", Answer: Answer{Status: 503, Header: map[string]string{"Retry-After": "7"}}, Want: channels.Classification{After: 7 * time.Second}},
		{Name: "504 retryable", Answer: Answer{Status: 504}, Want: retry},
		{Name: "connection refused retryable", Answer: Answer{Fault: Refuse}, Want: retry},
		{Name: "hanging provider retryable after the deadline", Answer: Answer{Fault: Hang}, Want: retry},
	}
}

// WebhookCases returns the contract table for channels that POST to
// receivers merchants run (signed webhooks), following the field's policy
// (Standard Webhooks, Svix): 2xx delivered; 410 permanent and the endpoint
// disabled; every other answer retried, not sooner than its Retry-After
// whatever the status, 3xx (never followed) and 4xx included; a refused
// connection and a receiver that never answers retried. The statuses
// listed in permanent (an operator's choice) are permanent instead; a
// listed status the table lacks gets its own case.
func WebhookCases(permanent ...int) []Case {
	retry := channels.Classification{}
	after := func(d time.Duration) channels.Classification { return channels.Classification{After: d} }
	ra := func(v string) map[string]string { return map[string]string{"Retry-After": v} }
	cases := []Case{
		{Name: "200 delivered", Answer: Answer{Status: 200, Body: "ok"}, Delivered: true},
		{Name: "201 delivered", Answer: Answer{Status: 201}, Delivered: true},
		{Name: "202 delivered", Answer: Answer{Status: 202}, Delivered: true},
		{Name: "204 delivered", Answer: Answer{Status: 204}, Delivered: true},
		{Name: "299 delivered", Answer: Answer{Status: 299}, Delivered: true},
		{Name: "200 with a huge body delivered", Answer: Answer{Status: 200, Body: strings.Repeat("x", 1<<20)}, Delivered: true},
		{Name: "301 retried", Answer: Answer{Status: 301, Header: map[string]string{"Location": "/moved"}}, Want: retry},
		{Name: "302 retried", Answer: Answer{Status: 302, Header: map[string]string{"Location": "/elsewhere"}}, Want: retry},
		{Name: "303 retried", Answer: Answer{Status: 303, Header: map[string]string{"Location": "/elsewhere"}}, Want: retry},
		{Name: "307 retried", Answer: Answer{Status: 307, Header: map[string]string{"Location": "/elsewhere"}}, Want: retry},
		{Name: "308 retried", Answer: Answer{Status: 308, Header: map[string]string{"Location": "/elsewhere"}}, Want: retry},
		{Name: "301 with Retry-After", Answer: Answer{Status: 301, Header: map[string]string{"Location": "/moved", "Retry-After": "7"}}, Want: after(7 * time.Second)},
		{Name: "400 retried", Answer: Answer{Status: 400, Body: `{"error":"bad payload"}`}, Want: retry},
		{Name: "401 retried", Answer: Answer{Status: 401, Body: "unauthorized"}, Want: retry},
		{Name: "403 echoing the request retried", Answer: Answer{Status: 403, Body: "forbidden", Echo: true}, Want: retry},
		{Name: "404 echoing the request retried", Answer: Answer{Status: 404, Body: "no route for", Echo: true}, Want: retry},
		{Name: "404 with Retry-After", Answer: Answer{Status: 404, Header: ra("7")}, Want: after(7 * time.Second)},
		{Name: "405 retried", Answer: Answer{Status: 405}, Want: retry},
		{Name: "409 retried", Answer: Answer{Status: 409}, Want: retry},
		{Name: "413 retried", Answer: Answer{Status: 413, Body: "payload too large"}, Want: retry},
		{Name: "415 retried", Answer: Answer{Status: 415}, Want: retry},
		{Name: "418 retried", Answer: Answer{Status: 418}, Want: retry},
		{Name: "422 retried", Answer: Answer{Status: 422, Body: `{"errors":["invalid"]}`}, Want: retry},
		{Name: "451 retried", Answer: Answer{Status: 451}, Want: retry},
		{Name: "410 disables the endpoint", Answer: Answer{Status: 410, Body: "gone"}, Want: channels.Classification{Permanent: true, Action: channels.DisableEndpoint}},
		{Name: "410 with Retry-After disables the endpoint", Answer: Answer{Status: 410, Header: ra("7")}, Want: channels.Classification{Permanent: true, Action: channels.DisableEndpoint}},
		{Name: "408 retried", Answer: Answer{Status: 408}, Want: retry},
		{Name: "425 retried", Answer: Answer{Status: 425}, Want: retry},
		{Name: "429 retried", Answer: Answer{Status: 429, Body: "slow down"}, Want: retry},
		{Name: "429 with Retry-After", Answer: Answer{Status: 429, Header: ra("7")}, Want: after(7 * time.Second)},
		{Name: "429 with Retry-After beyond a day, capped", Answer: Answer{Status: 429, Header: ra("999999999")}, Want: after(channels.MaxRetryAfter)},
		{Name: "429 with a malformed Retry-After retried", Answer: Answer{Status: 429, Header: ra("soon")}, Want: retry},
		{Name: "500 echoing the request retried", Answer: Answer{Status: 500, Body: "internal error", Echo: true}, Want: retry},
		{Name: "500 with a huge body retried", Answer: Answer{Status: 500, Body: strings.Repeat("error ", 200000)}, Want: retry},
		{Name: "500 with control characters retried", Answer: Answer{Status: 500, Body: "line1\r\nline2\x1b[31mred\x00\tend"}, Want: retry},
		{Name: "501 retried", Answer: Answer{Status: 501}, Want: retry},
		{Name: "502 retried", Answer: Answer{Status: 502, Body: "<html>bad gateway</html>"}, Want: retry},
		{Name: "503 retried", Answer: Answer{Status: 503}, Want: retry},
		{Name: "503 with Retry-After", Answer: Answer{Status: 503, Header: ra("7")}, Want: after(7 * time.Second)},
		{Name: "503 with Retry-After as an HTTP date", Answer: Answer{Status: 503, Header: ra(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))}, Want: after(30 * time.Minute)},
		{Name: "504 retried", Answer: Answer{Status: 504}, Want: retry},
		{Name: "599 retried", Answer: Answer{Status: 599}, Want: retry},
		{Name: "connection refused retried", Answer: Answer{Fault: Refuse}, Want: retry},
		{Name: "hanging receiver retried after the deadline", Answer: Answer{Fault: Hang}, Want: retry},
	}
	for _, status := range permanent {
		listed := false
		for i, c := range cases {
			if c.Answer.Status == status && c.Answer.Fault == NoFault {
				cases[i].Name = strings.Replace(c.Name, "retried", "permanent (listed)", 1)
				if !strings.Contains(cases[i].Name, "permanent") {
					cases[i].Name += ", permanent (listed)"
				}
				cases[i].Want = channels.Classification{Permanent: true}
				listed = true
			}
		}
		if !listed {
			cases = append(cases, Case{Name: strconv.Itoa(status) + " permanent (listed)", Answer: Answer{Status: status}, Want: channels.Classification{Permanent: true}})
		}
	}
	return cases
}
