package email

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/secret"
)

// errClosed is returned by Send after Close.
var errClosed = errors.New("email: channel closed")

// Channel sends email through an SMTP submission server. It is safe for
// concurrent use; reuse one Channel for all sends: it keeps the pool of
// open connections.
type Channel struct {
	cfg       Config
	render    *Renderer
	addr      string
	tlsConfig *tls.Config
	limiter   *rate.Limiter // nil: no rate limit
	// redact lists the credential forms that must never show in an
	// error, a receipt or a log line.
	redact []string

	sem    chan struct{} // one token per slot in use
	mu     sync.Mutex
	free   []*slot
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

var _ channels.Channel = (*Channel)(nil)

// New returns an email channel. It checks the configuration and parses the
// DKIM key but does not connect: connections open on the first sends.
func New(cfg Config) (*Channel, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	render, err := newRenderer(cfg)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tc = cfg.TLSConfig.Clone()
		tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)
	}
	if tc.ServerName == "" {
		tc.ServerName = cfg.Host
	}
	c := &Channel{
		cfg:       cfg,
		render:    render,
		addr:      net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		tlsConfig: tc,
		redact:    redactions(cfg.Username, cfg.Password),
		sem:       make(chan struct{}, cfg.Pool),
		done:      make(chan struct{}),
	}
	if cfg.Rate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), max(cfg.Burst, 1))
	}
	for range cfg.Pool {
		client, err := c.newClient()
		if err != nil {
			return nil, fmt.Errorf("email: %s", c.scrub(err.Error()))
		}
		c.free = append(c.free, &slot{client: client})
	}
	c.wg.Add(1)
	go c.janitor()
	return c, nil
}

// redactions returns the forms in which credentials travel: the password
// itself, base64 as LOGIN sends it, and the PLAIN response.
func redactions(user string, pass secret.Value) []string {
	if pass.IsZero() {
		return nil
	}
	p := pass.Reveal()
	enc := base64.StdEncoding.EncodeToString
	return []string{p, enc([]byte(p)), enc([]byte("\x00" + user + "\x00" + p))}
}

// scrub replaces every credential in s by [secret.Redacted].
func (c *Channel) scrub(s string) string {
	return channels.Redact(s, false, c.redact...)
}

// summary makes an error text safe for the delivery log: credentials
// redacted, one line, bounded.
func (c *Channel) summary(s string) string {
	return summarize(c.scrub(s), maxReplyText)
}

// Close closes the kept connections (QUIT) and stops the channel: Send
// fails afterwards. Sends in flight finish; their connections close when
// they do. Close is idempotent.
func (c *Channel) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	c.wg.Wait()
	c.sweep(true)
	return nil
}

// Send sends msg to ep.Address: one SMTP transaction on a kept connection
// (opened on demand), after waiting for the rate limit and a free
// connection. The message is multipart/alternative (msg.Text and
// msg.HTML), with From, Reply-To, To (with ep.Name), Subject, Date, a
// Message-ID derived from msg.ID ([MessageID]), Auto-Submitted:
// auto-generated, List-Id, Feedback-ID and Content-Language (each
// overridden by a header of msg of the same name), and msg.Headers as
// given; DKIM-signed when configured. These are the bytes
// [Renderer.Render] gives for ep, msg and the channel's clock; the
// receipt's BodySHA256 is their hash (the DATA of the transaction, before
// SMTP's dot-stuffing).
//
// A message that cannot be rendered (an invalid address, a header value
// holding CR or LF, a reserved header) is a permanent failure. The
// server's answers are classified as the package documentation tells:
// 2xx delivered, with the receipt's ProviderID the queue id when the reply
// names one; 4xx, timeouts and connection failures retryable; 5xx
// permanent, a bad mailbox or domain (5.1.x) also suppressing the address.
// Send makes exactly one attempt and gives up when ctx ends.
func (c *Channel) Send(ctx context.Context, ep channels.Endpoint, msg *channels.Message) (channels.Receipt, error) {
	if msg == nil || msg.ID == "" {
		return channels.Receipt{}, channels.Permanent(errors.New("email: message has no delivery id"))
	}
	env, err := c.render.compose(ep, msg, c.cfg.Now())
	if err != nil {
		if errors.Is(err, errInvalidAddress) {
			return channels.Receipt{}, channels.Disable(fmt.Errorf("email: %w", err))
		}
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("email: %s", c.scrub(err.Error())))
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return channels.Receipt{}, fmt.Errorf("email: rate limit: %w", err)
		}
	}
	s, err := c.acquire(ctx)
	if err != nil {
		if errors.Is(err, errClosed) {
			return channels.Receipt{}, err
		}
		return channels.Receipt{}, fmt.Errorf("email: waiting for a connection: %w", err)
	}
	defer c.release(s)

	start := c.cfg.Now()
	reused, err := c.ready(ctx, s)
	if err != nil {
		err = c.failure(ctx, stageConnect, err)
		c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "email server connection failed",
			slog.String("server", c.addr), slog.String("delivery", msg.ID), slog.String("error", err.Error()))
		return channels.Receipt{Duration: c.cfg.Now().Sub(start)}, err
	}
	sum := channels.HashBody(env.data)
	text, st, err := c.transact(ctx, s.conn, env)
	code := 250
	var te *textproto.Error
	if err != nil && st == stageEnd && errors.As(err, &te) && te.Code >= 200 && te.Code < 300 {
		// A 2xx other than 250 to the content: accepted all the same.
		code, text, err = te.Code, te.Msg, nil
		s.conn.dirty = false
		s.conn.sent++
	}
	c.after(s, err)
	receipt := channels.Receipt{Duration: c.cfg.Now().Sub(start)}
	if err == nil || st == stageEnd {
		receipt.BodySHA256 = sum // the content was sent (a refusal at MAIL, RCPT or DATA sent none)
	}
	if err != nil {
		err = c.failure(ctx, st, err)
		var pe *channels.ProviderError
		if errors.As(err, &pe) {
			receipt.Status = pe.Status
		}
		c.debug(ctx, "email refused", msg, st, receipt, reused, err)
		return receipt, err
	}
	r := newReply(code, c.scrub(text))
	receipt.Status = code
	receipt.ProviderID = queueID(r.Text)
	receipt.Detail = strings.Join(strings.Fields(strconv.Itoa(code)+" "+r.Enhanced.String()+" "+r.Text), " ")
	c.debug(ctx, "email delivered", msg, st, receipt, reused, nil)
	return receipt, nil
}

// failure turns the error of stage st into Send's error: a server reply is
// classified by [outcome]; a transport failure is retryable, and names the
// context's error when ctx ended the exchange. The text is scrubbed of
// credentials and kept to one short line.
func (c *Channel) failure(ctx context.Context, st stage, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		r := newReply(te.Code, c.scrub(te.Msg))
		return fmt.Errorf("email %s: %w", st, outcome(st, r))
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("email %s %s: %w", st, c.addr, ctxErr)
	}
	if st == stageConnect {
		return fmt.Errorf("email %s %s: %s", st, c.addr, c.summary(err.Error()))
	}
	return fmt.Errorf("email %s: connection lost: %s", st, c.summary(err.Error()))
}

func (c *Channel) debug(ctx context.Context, text string, msg *channels.Message, st stage, r channels.Receipt, reused bool, err error) {
	if !c.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("delivery", msg.ID), slog.Int("attempt", msg.Attempt),
		slog.Int("status", r.Status), slog.Duration("duration", r.Duration), slog.Bool("reused", reused),
	}
	if r.ProviderID != "" {
		attrs = append(attrs, slog.String("queue_id", r.ProviderID))
	}
	if err != nil {
		attrs = append(attrs, slog.String("stage", st.String()), slog.String("error", err.Error()))
	}
	c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, text, attrs...)
}
