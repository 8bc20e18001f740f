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
	"strings"
	"sync"
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
	// PermanentStatuses lists the HTTP statuses that refuse a message for
	// good: it is not retried, and goes to the dead letters. Every other
	// non-2xx answer is retried on the dispatcher's schedule, as webhook
	// platforms do (a 401 or 404 during a merchant's deploy is not a
	// refusal). 410 Gone disables the endpoint whatever this says.
	// Defaults to none.
	PermanentStatuses []int
	// IdleConnTimeout and TLSSessionCacheSize tune the keep-alive
	// connections and the TLS sessions kept per host; see [egress.Config]
	// for what they do and their defaults (30 s, 1024). MaxIdleConnsPerHost
	// and MaxIdleConns are checked but bound nothing here: the poster's
	// idle connections hold no goroutine and no buffer (see
	// [egress.NewPoster]); they bound the net/http clients of egress.
	IdleConnTimeout     time.Duration
	MaxIdleConnsPerHost int
	MaxIdleConns        int
	TLSSessionCacheSize int
	// DNS configures the cache of DNS answers (see [egress.DNSConfig] for
	// its defaults: the servers of /etc/resolv.conf, answers kept for
	// their TTL between 5 s and 5 minutes, 4096 of them).
	DNS egress.DNSConfig
	// Resolver, when set, looks host names up instead of the DNS cache.
	// Whatever it answers, the address dialled is checked. Defaults to
	// none.
	Resolver egress.Resolver
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
	for _, s := range c.PermanentStatuses {
		if s < 300 || s > 599 {
			return fmt.Errorf("webhook: permanent status %d is not a 3xx, 4xx or 5xx status", s)
		}
		if s == http.StatusGone {
			return errors.New("webhook: 410 cannot be a permanent status: it always disables the endpoint")
		}
	}
	return nil
}

// Channel sends signed webhooks. It is safe for concurrent use; reuse one
// Channel for all sends, it keeps the connection pool and the parsed
// secrets.
type Channel struct {
	cfg       Config
	poster    *egress.Poster
	policy    egress.Policy
	signers   signers
	targets   targets
	permanent map[int]bool
	// heads holds the buffers failed answers are read into (*[]byte of
	// summaryReadBytes).
	heads sync.Pool
}

var _ channels.Channel = (*Channel)(nil)

// New returns a webhook channel.
func New(cfg Config) (*Channel, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	poster, err := egress.NewPoster(egress.Config{
		ConnectTimeout:      cfg.ConnectTimeout,
		Timeout:             cfg.Timeout,
		IdleConnTimeout:     cfg.IdleConnTimeout,
		MaxIdleConnsPerHost: cfg.MaxIdleConnsPerHost,
		MaxIdleConns:        cfg.MaxIdleConns,
		TLSSessionCacheSize: cfg.TLSSessionCacheSize,
		Allow:               cfg.Allow,
		Resolver:            cfg.Resolver,
		DNS:                 cfg.DNS,
		TLSConfig:           cfg.TLSConfig,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	c := &Channel{
		cfg:       cfg,
		poster:    poster,
		policy:    egress.Policy{Allow: cfg.Allow},
		permanent: map[int]bool{},
	}
	for _, s := range cfg.PermanentStatuses {
		c.permanent[s] = true
	}
	c.heads.New = func() any { b := make([]byte, summaryReadBytes); return &b }
	return c, nil
}

// CloseIdleConnections closes the connections kept for reuse.
func (c *Channel) CloseIdleConnections() { c.poster.CloseIdleConnections() }

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
// A 2xx answer is a delivery. Every other answer is a failure retried on
// the dispatcher's schedule, not sooner than its Retry-After (see
// [Channel.StatusError]): 3xx (never followed) and 4xx included, but 410
// Gone, which disables the endpoint, and the statuses of
// Config.PermanentStatuses, which are permanent. Timeouts and connection
// errors (DNS, TLS, refused, reset) are retried. A URL or address the SSRF
// guard refuses, a missing or malformed secret, and a message without id
// or body are permanent. Errors name the host only, never the URL's path,
// query or the secret.
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
	ct := contentTypeJSON[0]
	if msg.ContentType != "" {
		ct = msg.ContentType
	}
	headers := [5]egress.Header{
		{Name: "Content-Type", Value: ct},
		{Name: "User-Agent", Value: c.cfg.UserAgent},
		{Name: hdrID, Value: msg.ID},
		{Name: hdrTimestamp, Value: strconv.FormatInt(ts, 10)},
		{Name: hdrSignature, Value: sg.sign(msg.ID, ts, msg.Body)},
	}
	buf := c.heads.Get().(*[]byte)
	defer c.heads.Put(buf)
	sum := channels.HashBody(msg.Body)
	ans, err := c.poster.Post(ctx, tg.url, headers[:], msg.Body, *buf, c.cfg.MaxResponseBytes)
	if err != nil {
		return channels.Receipt{Duration: c.cfg.Now().Sub(start), BodySHA256: sum}, c.transportError(tg, err)
	}
	receipt := channels.Receipt{Status: ans.Status, Detail: tg.host, BodySHA256: sum}
	if ans.Status >= 200 && ans.Status < 300 {
		receipt.Duration = c.cfg.Now().Sub(start)
		c.debug(ctx, "webhook delivered", tg, msg, ans.Status, receipt.Duration)
		return receipt, nil
	}
	message := summarize(ans.Head, ans.Truncated, tg, secret)
	now := c.cfg.Now()
	receipt.Duration = now.Sub(start)
	c.debug(ctx, "webhook refused", tg, msg, ans.Status, receipt.Duration)
	var header http.Header
	if ans.RetryAfter != "" {
		header = http.Header{"Retry-After": {ans.RetryAfter}}
	}
	return receipt, fmt.Errorf("webhook %s: %w", tg.host, c.StatusError(ans.Status, header, message, now))
}

// StatusError classifies a receiver's answer by its HTTP status, the way
// webhook platforms and the Standard Webhooks guidance do: nil for 2xx; a
// permanent error that disables the endpoint for 410 Gone; a permanent
// error for a status of Config.PermanentStatuses; otherwise an error
// retried on the dispatcher's schedule, not sooner than the answer's
// Retry-After (seconds or an HTTP date, capped at
// [channels.MaxRetryAfter]), whatever the status: 3xx (redirects are never
// followed), 4xx and 5xx alike. message is a short, secret-free summary of
// the answer's body.
func (c *Channel) StatusError(status int, header http.Header, message string, now time.Time) error {
	if status >= 200 && status < 300 {
		return nil
	}
	pe := &channels.ProviderError{Status: status, Message: message}
	if status >= 300 && status < 400 {
		pe.Message = strings.TrimSpace("redirect not followed " + pe.Message)
	}
	switch {
	case status == http.StatusGone:
		return channels.Disable(pe)
	case c.permanent[status]:
		return channels.Permanent(pe)
	}
	var after time.Duration
	if header != nil {
		after, _ = channels.ParseRetryAfter(header.Get("Retry-After"), now)
	}
	return channels.RetryAfter(after, pe)
}

// transportError turns a failed exchange into a secret-free error behind
// the host: only the exchange's cause is kept (egress.Cause), never a
// message quoting the URL, whose path and query can hold a token.
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
