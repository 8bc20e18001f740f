package channelstest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/heraldhq/herald/channels"
)

// Fault is a way for a fake provider to fail below the protocol.
type Fault int

const (
	// NoFault: the provider answers with the Answer's status and body.
	NoFault Fault = iota
	// Refuse: nothing listens at the provider's address (connection
	// refused).
	Refuse
	// Hang: the provider accepts the connection and never answers.
	Hang
)

// String names the fault.
func (f Fault) String() string {
	switch f {
	case Refuse:
		return "refuse"
	case Hang:
		return "hang"
	}
	return "none"
}

// Answer is what the fake provider is scripted to do for every send.
type Answer struct {
	// Status is the HTTP status or the SMTP reply code.
	Status int
	// Header holds response headers (Retry-After, Location…), for
	// protocols that have them.
	Header map[string]string
	// Body is the response body or the reply text.
	Body string
	// Echo makes the provider append the request target (path and query)
	// to Body, as error pages often do: a secret in the address must not
	// come back through the error.
	Echo bool
	// Fault, when set, replaces the answer with a transport failure.
	Fault Fault
}

// Case is one provider answer and the outcome Send must report.
type Case struct {
	// Name names the subtest.
	Name string
	// Answer is what the provider does.
	Answer Answer
	// Delivered is true when Send must succeed.
	Delivered bool
	// Want is the classification of Send's error when Delivered is false.
	// Want.After is a minimum: a channel may ask for a longer delay.
	Want channels.Classification
}

// Target is a channel under test, ready to send to its fake provider.
type Target struct {
	// Channel is the channel under test.
	Channel channels.Channel
	// Endpoint is where Send sends: the fake provider's address, with
	// the secrets the harness lists.
	Endpoint channels.Endpoint
	// Attempts, if set, reports how many requests (HTTP requests, SMTP
	// transactions) the provider received. The suite then checks each
	// Send reached it exactly once.
	Attempts func() int
	// Content, if set, returns what the provider received of the last
	// message, in the form the receipt's BodySHA256 covers (the request
	// body, the SMS text, the SMTP DATA). The suite then checks that a
	// delivered message's hash is that of these bytes.
	Content func() []byte
}

// Harness describes a channel to the suite.
type Harness struct {
	// New builds the channel under test, logging to logger, and a fake
	// provider that answers every send with a. It registers its cleanup
	// with t. The channel's own timeouts must be longer than HangLimit.
	New func(t *testing.T, a Answer, logger *slog.Logger) Target
	// Cases are the answers to try. For HTTP channels, start from
	// [HTTPCases] (a provider's API) or [WebhookCases] (receivers
	// merchants run).
	Cases []Case
	// Secrets must never appear in an error, a receipt or a log line
	// (tokens, signing secrets, secret URLs and their parts).
	Secrets []string
	// Message returns the message to send. Defaults to [SampleMessage].
	Message func() *channels.Message
	// Deadline is the context deadline given to Send when the provider
	// hangs. Defaults to 250 ms.
	Deadline time.Duration
	// HangLimit is how long the suite waits for Send to return once the
	// deadline passed, before declaring that it ignores its context.
	// Defaults to 10 s.
	HangLimit time.Duration
}

// WithDefaults returns a copy of h with the zero fields set to their
// defaults.
func (h Harness) WithDefaults() Harness {
	if h.Message == nil {
		h.Message = SampleMessage
	}
	if h.Deadline == 0 {
		h.Deadline = 250 * time.Millisecond
	}
	if h.HangLimit == 0 {
		h.HangLimit = 10 * time.Second
	}
	return h
}

func (h Harness) validate() error {
	switch {
	case h.New == nil:
		return fmt.Errorf("channelstest: Harness.New is required")
	case len(h.Cases) == 0:
		return fmt.Errorf("channelstest: Harness.Cases is empty")
	case h.Deadline < 0 || h.HangLimit < 0:
		return fmt.Errorf("channelstest: negative Deadline or HangLimit")
	}
	return nil
}

// MaxErrorLen is the longest error text a channel may return: a provider's
// answer is summarised, never copied whole into the delivery log.
const MaxErrorLen = 1024

// Run runs every case of h as a parallel subtest of t (see the package
// documentation for what it checks).
func Run(t *testing.T, h Harness) {
	t.Helper()
	h = h.WithDefaults()
	if err := h.validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range h.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			o := observe(t, h, c)
			t.Logf("receipt %+v, error: %v", o.receipt, o.err)
			for _, p := range verify(h, c, o) {
				t.Error(p)
			}
		})
	}
}

// observation is what one Send did.
type observation struct {
	receipt  channels.Receipt
	err      error
	logs     string
	attempts int  // -1 when the harness cannot count
	ctxDone  bool // the context had expired when Send returned
	content  []byte
	// hasContent: the harness reports what the provider received.
	hasContent bool
}

type result struct {
	receipt channels.Receipt
	err     error
}

func observe(t *testing.T, h Harness, c Case) observation {
	t.Helper()
	logs := &SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tg := h.New(t, c.Answer, logger)
	if tg.Channel == nil {
		t.Fatal("Harness.New returned no channel")
	}
	ctx := t.Context()
	if c.Answer.Fault == Hang {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Deadline)
		defer cancel()
	}
	done := make(chan result, 1)
	go func() {
		r, err := tg.Channel.Send(ctx, tg.Endpoint, h.Message())
		done <- result{r, err}
	}()
	limit := time.NewTimer(h.Deadline + h.HangLimit)
	defer limit.Stop()
	var res result
	select {
	case res = <-done:
	case <-limit.C:
		t.Fatalf("Send did not return %s after its context's deadline: it ignores ctx", h.HangLimit)
	}
	o := observation{receipt: res.receipt, err: res.err, logs: logs.String(), attempts: -1, ctxDone: ctx.Err() != nil}
	if tg.Attempts != nil {
		o.attempts = tg.Attempts()
	}
	if tg.Content != nil {
		o.content, o.hasContent = tg.Content(), true
	}
	return o
}

// verify lists what o does wrong for case c.
func verify(h Harness, c Case, o observation) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if c.Delivered {
		if o.err != nil {
			add("Send failed, want delivered: %v", o.err)
		}
		if !isSHA256Hex(o.receipt.BodySHA256) {
			add("a delivered receipt's BodySHA256 is %q, want the lower-case hex SHA-256 of the bytes sent", o.receipt.BodySHA256)
		} else if o.hasContent && o.receipt.BodySHA256 != channels.HashBody(o.content) {
			add("BodySHA256 %s is not the hash of what the provider received (%d bytes)", o.receipt.BodySHA256, len(o.content))
		}
	} else if o.err == nil {
		add("Send succeeded, want a failure classified %+v", c.Want)
	} else {
		got := channels.Classify(o.err)
		switch {
		case got.Permanent != c.Want.Permanent:
			add("classification %+v, want %+v (error: %v)", got, c.Want, o.err)
		case got.Permanent && got.Action != c.Want.Action:
			add("action %s, want %s (error: %v)", got.Action, c.Want.Action, o.err)
		case !got.Permanent && got.After < c.Want.After:
			add("retry after %s, want at least %s (error: %v)", got.After, c.Want.After, o.err)
		}
		if c.Answer.Fault == Hang && !o.ctxDone {
			add("Send returned before its context's deadline with %v, want it to wait for the provider until then", o.err)
		}
		msg := o.err.Error()
		if len(msg) > MaxErrorLen {
			add("error text is %d bytes long, want at most %d", len(msg), MaxErrorLen)
		}
		if i := strings.IndexFunc(msg, unicode.IsControl); i >= 0 {
			add("error text holds control character %q at %d: %q", msg[i], i, msg)
		}
	}

	for _, s := range h.Secrets {
		if s == "" {
			continue
		}
		where := map[string]string{
			"receipt Detail":     o.receipt.Detail,
			"receipt ProviderID": o.receipt.ProviderID,
			"logs":               o.logs,
		}
		if o.err != nil {
			where["error"] = o.err.Error()
			where["error (%+v)"] = fmt.Sprintf("%+v", o.err)
		}
		for name, text := range where {
			if strings.Contains(text, s) {
				add("secret %q leaked into the %s: %q", redactHint(s), name, strings.ReplaceAll(text, s, "<SECRET>"))
			}
		}
	}

	if o.attempts >= 0 {
		switch c.Answer.Fault {
		case NoFault:
			if o.attempts != 1 {
				add("the provider saw %d attempts, want exactly 1 (channels never retry by themselves)", o.attempts)
			}
		case Hang:
			if o.attempts > 1 {
				add("the provider saw %d attempts, want at most 1", o.attempts)
			}
		}
	}
	return problems
}

// isSHA256Hex reports whether s is a SHA-256 in lower-case hex.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// redactHint shows enough of a leaked secret to tell which one it is.
func redactHint(s string) string {
	if len(s) <= 6 {
		return s
	}
	return s[:6] + "…"
}

// SampleMessage returns a fresh, fully rendered message as the dispatcher
// would pass it: every field set, a JSON body, a stable delivery id.
func SampleMessage() *channels.Message {
	return &channels.Message{
		ID:          "dlv_5c1f0e9a7b3d4e21",
		Kind:        "incident.update",
		IncidentID:  "TSR-1610",
		Sequence:    3,
		Status:      "monitoring",
		Locale:      "fr",
		Subject:     "[Surveillance] Double prélèvement sur les terminaux Nexo",
		Text:        "Un correctif a été déployé. Nous surveillons les transactions.",
		HTML:        "<p>Un correctif a été déployé. Nous surveillons les transactions.</p>",
		Body:        []byte(`{"type":"incident.update","data":{"incident_id":"TSR-1610","sequence":3,"status":"monitoring"}}`),
		ContentType: "application/json",
		Headers:     map[string]string{"List-Unsubscribe": "<https://herald.example/u/abc>"},
		Attempt:     1,
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes (a channel may
// log from several goroutines): a log sink for tests.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
