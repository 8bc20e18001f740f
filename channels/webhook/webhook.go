package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
)

// Config configures the webhook channel.
type Config struct {
	// ConnectTimeout bounds name resolution and TCP connect. Defaults to
	// 5 s.
	ConnectTimeout time.Duration
	// Timeout bounds one delivery attempt, from dial to the end of the
	// answer. Defaults to 15 s.
	Timeout time.Duration
	// MaxResponseBytes bounds how much of an answer is read (to summarise
	// a failure and to drain the connection for reuse); a longer answer
	// is cut and its connection closed. Defaults to 64 KiB.
	MaxResponseBytes int64
	// UserAgent is sent with every request. Defaults to
	// "Herald-Webhooks/1.0".
	UserAgent string
	// AllowHTTP accepts http:// endpoint URLs. Defaults to false: https
	// only (tests and private deployments set it).
	AllowHTTP bool
	// Allow lists address ranges reachable despite the SSRF guard, e.g.
	// 127.0.0.1/32 in tests. Defaults to none: private, loopback,
	// link-local and other non-public addresses are refused.
	Allow []netip.Prefix
	// TLSConfig is the TLS client configuration (e.g. extra root CAs).
	// Defaults to the system roots, TLS 1.2 minimum.
	TLSConfig *tls.Config
	// Now is the clock that stamps webhook-timestamp. Defaults to
	// time.Now.
	Now func() time.Time
	// Logger receives debug lines about sends (host and status, never the
	// URL). Defaults to a logger that discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with the zero fields set to their
// defaults.
func (c Config) WithDefaults() Config {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = 64 << 10
	}
	if c.UserAgent == "" {
		c.UserAgent = "Herald-Webhooks/1.0"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.ConnectTimeout < 0 || c.Timeout < 0:
		return errors.New("webhook: timeouts must not be negative")
	case c.MaxResponseBytes < 0:
		return errors.New("webhook: MaxResponseBytes must not be negative")
	}
	return nil
}

// Channel sends signed webhooks. It is safe for concurrent use; reuse one
// Channel for all sends, it keeps the connection pool and the parsed
// secrets.
type Channel struct {
	cfg     Config
	client  *http.Client
	policy  egress.Policy
	signers signers
	targets targets
	ua      []string
}

var _ channels.Channel = (*Channel)(nil)

// New returns a webhook channel.
func New(cfg Config) (*Channel, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client, err := egress.NewClient(egress.Config{
		ConnectTimeout: cfg.ConnectTimeout,
		Timeout:        cfg.Timeout,
		Allow:          cfg.Allow,
		TLSConfig:      cfg.TLSConfig,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &Channel{
		cfg:    cfg,
		client: client,
		policy: egress.Policy{Allow: cfg.Allow},
		ua:     []string{cfg.UserAgent},
	}, nil
}

// CloseIdleConnections closes the connections kept for reuse.
func (c *Channel) CloseIdleConnections() { c.client.CloseIdleConnections() }

// Header names, in canonical form so net/http uses them as they are.
const (
	hdrID        = "Webhook-Id"
	hdrTimestamp = "Webhook-Timestamp"
	hdrSignature = "Webhook-Signature"
)

var contentTypeJSON = []string{"application/json"}

// Send POSTs msg.Body to ep.Address, signed per the Standard Webhooks
// specification with ep.Secret: webhook-id is msg.ID (stable across
// retries, so receivers deduplicate), webhook-timestamp is the current Unix
// time (every attempt is signed afresh), webhook-signature holds
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" for each space-separated
// secret.
//
// The receipt's BodySHA256 is the hash of msg.Body, the bytes POSTed.
//
// A 2xx answer is a delivery. Other outcomes follow
// [channels.HTTPStatusError]: 3xx (never followed), and 4xx but 408, 425
// and 429, are permanent, 410 also disables the endpoint; 408, 425, 429 and
// 5xx are retryable, honouring Retry-After. Timeouts and connection errors
// are retryable. A URL or address the SSRF guard refuses, a missing or
// malformed secret, and a message without id or body are permanent. Errors
// name the host only, never the URL's path, query or the secret.
func (c *Channel) Send(ctx context.Context, ep channels.Endpoint, msg *channels.Message) (channels.Receipt, error) {
	if msg == nil || msg.ID == "" {
		return channels.Receipt{}, channels.Permanent(errors.New("webhook: message has no delivery id"))
	}
	if len(msg.Body) == 0 {
		return channels.Receipt{}, channels.Permanent(errors.New("webhook: message has no body"))
	}
	tg, err := c.targets.get(ep.Address, c.policy, c.cfg.AllowHTTP)
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("webhook endpoint: %w", err))
	}
	secret := ep.Secret.Reveal()
	sg, err := c.signers.get(secret)
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("webhook %s: %w", tg.host, err))
	}

	start := c.cfg.Now()
	ts := start.Unix()
	vals := make([]string, 3)
	vals[0], vals[1], vals[2] = msg.ID, strconv.FormatInt(ts, 10), sg.sign(msg.ID, ts, msg.Body)
	ct := contentTypeJSON
	if msg.ContentType != "" && msg.ContentType != contentTypeJSON[0] {
		ct = []string{msg.ContentType}
	}
	req := egress.NewPost(ctx, tg.u, http.Header{
		"Content-Type": ct,
		"User-Agent":   c.ua,
		hdrID:          vals[0:1:1],
		hdrTimestamp:   vals[1:2:2],
		hdrSignature:   vals[2:3:3],
	}, msg.Body)

	// Straight to the guarded transport: http.Client would only add a
	// redirect policy (none is followed), a cookie jar (none) and a copy
	// of the headers per request.
	sum := channels.HashBody(msg.Body)
	resp, err := c.client.Transport.RoundTrip(req)
	if err != nil {
		return channels.Receipt{Duration: c.cfg.Now().Sub(start), BodySHA256: sum}, c.transportError(tg, err)
	}
	receipt := channels.Receipt{Status: resp.StatusCode, Detail: tg.host, BodySHA256: sum}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_ = egress.DrainClose(resp.Body, c.cfg.MaxResponseBytes)
		receipt.Duration = c.cfg.Now().Sub(start)
		c.debug(ctx, "webhook delivered", tg, msg, resp.StatusCode, receipt.Duration)
		return receipt, nil
	}
	head, truncated := egress.ReadHead(resp.Body, summaryReadBytes, c.cfg.MaxResponseBytes)
	now := c.cfg.Now()
	receipt.Duration = now.Sub(start)
	c.debug(ctx, "webhook refused", tg, msg, resp.StatusCode, receipt.Duration)
	message := summarize(head, truncated, tg, secret)
	return receipt, fmt.Errorf("webhook %s: %w", tg.host, channels.HTTPStatusError(resp.StatusCode, resp.Header, message, now))
}

// transportError turns a failed exchange into a secret-free error: the
// *url.Error net/http returns quotes the whole URL, so only its cause is
// kept, behind the host.
func (c *Channel) transportError(tg *target, err error) error {
	err = fmt.Errorf("webhook %s: %w", tg.host, egress.Cause(err))
	if egress.Refused(err) {
		return channels.Permanent(err)
	}
	return err // retryable on the dispatcher's schedule
}

func (c *Channel) debug(ctx context.Context, text string, tg *target, msg *channels.Message, status int, d time.Duration) {
	if !c.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, text,
		slog.String("host", tg.host), slog.String("delivery", msg.ID),
		slog.Int("attempt", msg.Attempt), slog.Int("status", status), slog.Duration("duration", d))
}
