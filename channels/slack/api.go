package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
)

// apiClient calls Slack's Web API through slack-go. It answers every
// non-200 status itself (slack-go would drop the body and choke on an
// HTTP-date Retry-After), bounds the answers slack-go reads, and turns
// slack-go's errors into Herald's outcomes.
type apiClient struct {
	api  *slackapi.Client
	doer *apiDoer // its secrets (the token) and clock serve the client too
}

func newAPIClient(cfg Config) *apiClient {
	d := &apiDoer{
		client: &http.Client{
			// A pool of its own: CloseIdleConnections must not close
			// the process-wide default one.
			Transport:     http.DefaultTransport.(*http.Transport).Clone(),
			Timeout:       cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		maxBody: cfg.MaxResponseBytes,
		now:     cfg.Now,
		secrets: []string{cfg.BotToken.Reveal()},
	}
	return &apiClient{
		api:  slackapi.New(cfg.BotToken.Reveal(), slackapi.OptionAPIURL(cfg.APIURL), slackapi.OptionHTTPClient(d)),
		doer: d,
	}
}

// callInfo carries what the doer saw of one call back to its caller.
type callInfo struct {
	header http.Header
}

type callInfoKey struct{}

// apiDoer is the HTTP client slack-go uses.
type apiDoer struct {
	client  *http.Client
	maxBody int64
	now     func() time.Time
	secrets []string
}

// Do sends req. A non-200 answer becomes a classified error here, which
// slack-go returns as is.
func (d *apiDoer) Do(req *http.Request) (*http.Response, error) {
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, egress.Cause(err) // retryable
	}
	if info, ok := req.Context().Value(callInfoKey{}).(*callInfo); ok {
		info.header = resp.Header
	}
	if resp.StatusCode != http.StatusOK {
		head, truncated := egress.ReadHead(resp.Body, summaryReadBytes, d.maxBody)
		code, summary := parseAnswer(head, truncated, d.secrets)
		return nil, classify(resp.StatusCode, resp.Header, code, summary, false, d.now())
	}
	resp.Body = &limitedBody{r: io.LimitReader(resp.Body, d.maxBody), c: resp.Body}
	return resp, nil
}

// limitedBody bounds what slack-go reads of an answer.
type limitedBody struct {
	r io.Reader
	c io.Closer
}

func (b *limitedBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *limitedBody) Close() error               { return b.c.Close() }

// post calls chat.postMessage and returns the new message's ts.
func (a *apiClient) post(ctx context.Context, channelID string, m *apiMessage, threadTS string) (string, error) {
	info := &callInfo{}
	ctx = context.WithValue(ctx, callInfoKey{}, info)
	opts := append(m.options(false), slackapi.MsgOptionDisableLinkUnfurl(), slackapi.MsgOptionDisableMediaUnfurl())
	if threadTS != "" {
		opts = append(opts, slackapi.MsgOptionTS(threadTS))
	}
	_, ts, err := a.api.PostMessageContext(ctx, channelID, opts...)
	if err != nil {
		return "", a.outcome(err, info)
	}
	if ts == "" {
		return "", errors.New("chat.postMessage answered without a ts")
	}
	return ts, nil
}

// update calls chat.update on the message ts.
func (a *apiClient) update(ctx context.Context, channelID, ts string, m *apiMessage) error {
	info := &callInfo{}
	ctx = context.WithValue(ctx, callInfoKey{}, info)
	_, _, _, err := a.api.UpdateMessageContext(ctx, channelID, ts, m.options(true)...)
	if err != nil {
		return a.outcome(err, info)
	}
	return nil
}

// delete calls chat.delete on the message ts.
func (a *apiClient) delete(ctx context.Context, channelID, ts string) error {
	info := &callInfo{}
	ctx = context.WithValue(ctx, callInfoKey{}, info)
	if _, _, err := a.api.DeleteMessageContext(ctx, channelID, ts); err != nil {
		return a.outcome(err, info)
	}
	return nil
}

// outcome classifies an error slack-go returned.
func (a *apiClient) outcome(err error, info *callInfo) error {
	var se slackapi.SlackErrorResponse
	var rl *slackapi.RateLimitedError
	var pe *channels.PermanentError
	var re *channels.RetryError
	switch {
	case errors.As(err, &pe), errors.As(err, &re):
		return err // classified by the doer
	case errors.As(err, &se):
		code, summary := se.Err, ""
		if !isCode([]byte(code)) {
			code, summary = "", summarize([]byte(se.Err), false, a.doer.secrets)
		}
		return classify(http.StatusOK, info.header, code, summary, false, a.doer.now())
	case errors.As(err, &rl):
		return channels.RetryAfter(rl.RetryAfter, &channels.ProviderError{Status: http.StatusTooManyRequests, Code: "ratelimited"})
	}
	// Transport failures, timeouts, an answer that is not JSON: retry.
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("unreadable answer: %w", err)
	}
	for _, s := range a.doer.secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			return errors.New(summarize([]byte(err.Error()), false, a.doer.secrets))
		}
	}
	return err
}
