package sms

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"

	twclient "github.com/twilio/twilio-go/client"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"
)

const (
	// maxResponseBytes bounds how much of Twilio's answer is read (its
	// answers are a few KiB); a longer answer is cut and its connection
	// closed instead of reused.
	maxResponseBytes = 64 << 10
	// headBytes is how much of an answer is kept to summarise a refusal
	// that is not a Twilio error document.
	headBytes = 1024
)

// exchange is one send's view of twilio-go: the library builds the request
// (form encoding, authentication, user agent) and decodes the answer, while
// the exchange binds the request to the send's context (twilio-go takes
// none), sends it to the configured base URL, and keeps the response's
// status, headers and first bytes, which twilio-go's errors drop
// (Retry-After, a body that is not a Twilio error document).
type exchange struct {
	ch   *Channel
	ctx  context.Context
	resp *http.Response // the answer, nil when none came
	body *recordingBody
}

func (c *Channel) newExchange(ctx context.Context) *exchange {
	return &exchange{ch: c, ctx: ctx}
}

// api returns a twilio-go API service whose requests go through x.
func (x *exchange) api() *twapi.ApiService {
	tc := &twclient.Client{
		Credentials: x.ch.creds,
		HTTPClient: &http.Client{
			Transport:     x,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		UserAgentExtensions: x.ch.userAgentEx,
	}
	tc.SetAccountSid(x.ch.cfg.AccountSID)
	// A RequestHandler built by hand, not NewRequestHandler: the edge and
	// region come from the configuration (BaseURL), not the environment.
	return twapi.NewApiService(&twclient.RequestHandler{Client: &rebasedClient{Client: tc, base: x.ch.baseURL}})
}

// RoundTrip sends req under the send's context and records the answer.
func (x *exchange) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := x.ch.transport.RoundTrip(req.WithContext(x.ctx))
	if err != nil {
		return nil, err
	}
	x.close() // a previous answer, should twilio-go ever send twice
	x.resp = resp
	x.body = &recordingBody{rc: resp.Body, left: maxResponseBytes}
	resp.Body = x.body
	return resp, nil
}

// close drains (within the read bound) and closes the answer's body, which
// twilio-go leaves open on its error paths.
func (x *exchange) close() {
	if x.body != nil {
		_ = x.body.Close()
	}
}

// head returns the first bytes of the answer, reading more of it if
// twilio-go read less than headBytes.
func (x *exchange) head() []byte {
	if x.body == nil {
		return nil
	}
	var buf [512]byte
	for len(x.body.head) < headBytes {
		if _, err := x.body.Read(buf[:min(len(buf), headBytes-len(x.body.head))]); err != nil {
			break
		}
	}
	return x.body.head
}

// recordingBody is a response body read at most left bytes, whose first
// headBytes are kept.
type recordingBody struct {
	rc     io.ReadCloser
	left   int64
	head   []byte
	closed bool
}

func (b *recordingBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if keep := min(n, headBytes-len(b.head)); keep > 0 {
		b.head = append(b.head, p[:keep]...)
	}
	return n, err
}

// Close drains what is left of the body within the read bound before
// closing it: net/http reuses a connection only once its answer was read to
// the end, and twilio-go closes bodies after decoding one JSON value.
func (b *recordingBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.left > 0 {
		_, _ = io.Copy(io.Discard, b)
	}
	return b.rc.Close()
}

// rebasedClient sends twilio-go's requests, addressed to
// https://api.twilio.com, to the configured base URL instead.
type rebasedClient struct {
	*twclient.Client
	base string
}

func (c *rebasedClient) SendRequest(method, rawURL string, data url.Values, headers map[string]any, body ...byte) (*http.Response, error) {
	if rest, ok := strings.CutPrefix(rawURL, DefaultBaseURL); ok {
		rawURL = c.base + rest
	}
	return c.Client.SendRequest(method, rawURL, data, headers, body...)
}
