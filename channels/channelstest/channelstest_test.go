package channelstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
)

const token = "tok_s3cr3tvalue"

// refChannel is a minimal, correct HTTP channel: the suite must pass it.
type refChannel struct {
	client *http.Client
	logger *slog.Logger
	// leak makes it misbehave: put the URL in errors and logs.
	leak bool
}

func newRefChannel(logger *slog.Logger, leak bool) *refChannel {
	return &refChannel{
		client: &http.Client{
			Timeout:       time.Minute,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		logger: logger,
		leak:   leak,
	}
}

func (c *refChannel) Send(ctx context.Context, ep channels.Endpoint, msg *channels.Message) (channels.Receipt, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.Address, bytes.NewReader(msg.Body))
	if err != nil {
		return channels.Receipt{}, channels.Permanent(errors.New("invalid address"))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if c.leak {
			return channels.Receipt{}, err // *url.Error quotes the URL
		}
		return channels.Receipt{}, fmt.Errorf("post %s: %w", req.URL.Host, errors.Unwrap(err))
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	if c.leak {
		c.logger.Info("answered", "url", ep.Address)
	}
	c.logger.Debug("answered", "status", resp.StatusCode)
	return channels.Receipt{Status: resp.StatusCode, BodySHA256: channels.HashBody(msg.Body)},
		channels.HTTPStatusError(resp.StatusCode, resp.Header, http.StatusText(resp.StatusCode), time.Now())
}

func refHarness(leak bool) Harness {
	return Harness{
		New: func(t *testing.T, a Answer, logger *slog.Logger) Target {
			p := NewHTTPProvider(t, a)
			return Target{
				Channel:  newRefChannel(logger, leak),
				Endpoint: channels.Endpoint{Address: p.URL + "/hook?token=" + token},
				Attempts: p.Requests,
				Content:  p.LastBody,
			}
		},
		Cases:   HTTPCases(),
		Secrets: []string{token},
	}
}

func TestRunPassesACorrectChannel(t *testing.T) {
	t.Parallel()
	Run(t, refHarness(false))
}

// TestRunCatchesALeakyChannel runs the suite's checks on a channel that
// quotes its secret URL: they must report it.
func TestRunCatchesALeakyChannel(t *testing.T) {
	t.Parallel()
	h := refHarness(true).WithDefaults()
	for _, c := range []Case{HTTPCases()[0], {Name: "refused", Answer: Answer{Fault: Refuse}}} {
		o := observe(t, h, c)
		problems := verify(h, c, o)
		if len(problems) == 0 {
			t.Errorf("%s: no problem reported for a channel that leaks its URL", c.Name)
		}
		for _, p := range problems {
			if strings.Contains(p, token) {
				t.Errorf("%s: the report itself quotes the secret: %s", c.Name, p)
			}
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	h := Harness{Secrets: []string{"s3cr3t"}}.WithDefaults()
	base := errors.New("boom")
	retry := Case{Name: "retry", Answer: Answer{Status: 500}}
	retry7 := Case{Name: "retry7", Answer: Answer{Status: 429}, Want: channels.Classification{After: 7 * time.Second}}
	gone := Case{Name: "gone", Answer: Answer{Status: 410}, Want: channels.Classification{Permanent: true, Action: channels.DisableEndpoint}}
	ok := Case{Name: "ok", Answer: Answer{Status: 200}, Delivered: true}
	hang := Case{Name: "hang", Answer: Answer{Fault: Hang}}
	sent := []byte(`{"a":1}`)
	hashed := channels.Receipt{BodySHA256: channels.HashBody(sent)}
	for _, tc := range []struct {
		name string
		c    Case
		o    observation
		want string // substring of the first problem, "" for none
	}{
		{"delivered", ok, observation{receipt: hashed, attempts: 1}, ""},
		{"delivered, attempts unknown", ok, observation{receipt: hashed, attempts: -1}, ""},
		{"delivered, content matches", ok, observation{receipt: hashed, attempts: 1, content: sent, hasContent: true}, ""},
		{"delivered without a hash", ok, observation{attempts: 1}, "BodySHA256"},
		{"delivered with an upper-case hash", ok, observation{receipt: channels.Receipt{BodySHA256: strings.ToUpper(hashed.BodySHA256)}, attempts: 1}, "BodySHA256"},
		{"delivered, hash of other bytes", ok, observation{receipt: hashed, attempts: 1, content: []byte(`{"a":2}`), hasContent: true}, "not the hash"},
		{"failed instead of delivered", ok, observation{err: base, attempts: 1}, "Send failed"},
		{"delivered instead of failing", retry, observation{attempts: 1}, "Send succeeded"},
		{"retryable", retry, observation{err: base, attempts: 1}, ""},
		{"permanent instead of retryable", retry, observation{err: channels.Permanent(base), attempts: 1}, "classification"},
		{"retryable instead of permanent", gone, observation{err: base, attempts: 1}, "classification"},
		{"wrong action", gone, observation{err: channels.Permanent(base), attempts: 1}, "action"},
		{"disabled", gone, observation{err: fmt.Errorf("x: %w", channels.Disable(base)), attempts: 1}, ""},
		{"retry hint honoured", retry7, observation{err: channels.RetryAfter(7*time.Second, base), attempts: 1}, ""},
		{"longer retry hint", retry7, observation{err: channels.RetryAfter(time.Minute, base), attempts: 1}, ""},
		{"retry hint ignored", retry7, observation{err: base, attempts: 1}, "retry after"},
		{"secret in error", retry, observation{err: errors.New("GET /?t=s3cr3t"), attempts: 1}, "leaked into the error"},
		{"secret in logs", ok, observation{receipt: hashed, logs: "msg=x url=/?t=s3cr3t", attempts: 1}, "leaked into the logs"},
		{"secret in receipt", ok, observation{receipt: channels.Receipt{Detail: "s3cr3t", BodySHA256: hashed.BodySHA256}, attempts: 1}, "receipt Detail"},
		{"retried by itself", retry, observation{err: base, attempts: 3}, "attempts"},
		{"never reached the provider", ok, observation{receipt: hashed, attempts: 0}, "attempts"},
		{"long error", retry, observation{err: errors.New(strings.Repeat("x", MaxErrorLen+1)), attempts: 1}, "bytes long"},
		{"control characters", retry, observation{err: errors.New("a\x1b[31mb"), attempts: 1}, "control character"},
		{"newline", retry, observation{err: errors.New("a\nb"), attempts: 1}, "control character"},
		{"hang honoured", hang, observation{err: context.DeadlineExceeded, ctxDone: true, attempts: 1}, ""},
		{"hang returned early", hang, observation{err: base, attempts: 1}, "before its context's deadline"},
		{"hang permanent", hang, observation{err: channels.Permanent(base), ctxDone: true, attempts: 1}, "classification"},
	} {
		problems := verify(h, tc.c, tc.o)
		switch {
		case tc.want == "" && len(problems) > 0:
			t.Errorf("%s: unexpected problems %q", tc.name, problems)
		case tc.want != "" && len(problems) == 0:
			t.Errorf("%s: no problem reported, want %q", tc.name, tc.want)
		case tc.want != "" && !strings.Contains(problems[0], tc.want):
			t.Errorf("%s: problem %q, want it to mention %q", tc.name, problems[0], tc.want)
		}
	}
}

func TestHTTPProvider(t *testing.T) {
	t.Parallel()
	p := NewHTTPProvider(t, Answer{Status: 429, Header: map[string]string{"Retry-After": "7"}, Body: "slow", Echo: true})
	resp, err := http.Post(p.URL+"/a?b=c", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" || string(body) != "slow /a?b=c" || p.Requests() != 1 {
		t.Errorf("got %d %q %q after %d requests", resp.StatusCode, resp.Header.Get("Retry-After"), body, p.Requests())
	}
	if _, err := http.PostForm(p.URL, map[string][]string{"Body": {"Réseau rétabli & OK"}}); err != nil {
		t.Fatal(err)
	}
	if got := string(p.LastForm("Body")); got != "Réseau rétabli & OK" {
		t.Errorf("LastForm(Body) = %q", got)
	}
	if got := string(p.LastBody()); got != "Body=R%C3%A9seau+r%C3%A9tabli+%26+OK" {
		t.Errorf("LastBody() = %q", got)
	}
	refused := NewHTTPProvider(t, Answer{Fault: Refuse})
	if resp, err := http.Get(refused.URL); err == nil {
		_ = resp.Body.Close()
		t.Error("the refusing provider answered")
	}
}

func TestHarnessValidate(t *testing.T) {
	t.Parallel()
	if err := (Harness{Cases: HTTPCases()}).validate(); err == nil {
		t.Error("a harness without New accepted")
	}
	if err := (Harness{New: refHarness(false).New}).validate(); err == nil {
		t.Error("a harness without cases accepted")
	}
}

// TestWebhookCases checks the receivers' table: 410 disables, a listed
// status is permanent (added when the table lacks it), every other non-2xx
// answer is retried; case names are unique.
func TestWebhookCases(t *testing.T) {
	t.Parallel()
	for _, permanent := range [][]int{nil, {301, 404, 499}} {
		cases := WebhookCases(permanent...)
		names := map[string]bool{}
		listed := map[int]bool{}
		for _, s := range permanent {
			listed[s] = true
		}
		seen := map[int]bool{}
		for _, c := range cases {
			if names[c.Name] {
				t.Errorf("case %q twice", c.Name)
			}
			names[c.Name] = true
			s := c.Answer.Status
			seen[s] = true
			switch {
			case c.Answer.Fault != NoFault:
				if c.Want.Permanent || c.Delivered {
					t.Errorf("%s: %+v", c.Name, c)
				}
			case s >= 200 && s < 300:
				if !c.Delivered {
					t.Errorf("%s: not delivered", c.Name)
				}
			case s == 410:
				if c.Want != (channels.Classification{Permanent: true, Action: channels.DisableEndpoint}) {
					t.Errorf("%s: %+v", c.Name, c.Want)
				}
			case listed[s]:
				if !c.Want.Permanent || c.Want.Action != channels.NoAction || !strings.Contains(c.Name, "permanent") {
					t.Errorf("%s: %+v, want permanent", c.Name, c.Want)
				}
			default:
				if c.Want.Permanent || c.Delivered {
					t.Errorf("%s: %+v, want retried", c.Name, c.Want)
				}
			}
		}
		for s := range listed {
			if !seen[s] {
				t.Errorf("listed status %d has no case", s)
			}
		}
	}
}
