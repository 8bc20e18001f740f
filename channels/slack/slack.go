package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
)

// Channel sends Slack messages, by incoming webhook or as Herald's bot. It
// is safe for concurrent use; reuse one Channel for all sends: it keeps
// the connection pools, the per-channel limiters and the per-thread locks.
type Channel struct {
	cfg    Config
	client *http.Client // incoming webhooks
	api    *apiClient   // nil without a bot token
	limits *limiters
	locks  keyLocks
	hooks  hooks
	checks *checked
	// ownClient: the webhook client was built here (CloseIdleConnections
	// closes it).
	ownClient bool
}

var _ channels.Channel = (*Channel)(nil)

// New returns a Slack channel.
func New(cfg Config) (*Channel, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Channel{cfg: cfg, client: cfg.HTTPClient, limits: newLimiters(cfg.PerChannelInterval, cfg.MaxRateWait, cfg.Now), checks: newChecked()}
	if c.client == nil {
		client, err := egress.NewClient(egress.Config{Timeout: cfg.Timeout})
		if err != nil {
			return nil, fmt.Errorf("slack: %w", err)
		}
		c.client, c.ownClient = client, true
	}
	if !cfg.BotToken.IsZero() {
		c.api = newAPIClient(cfg)
	}
	return c, nil
}

// CloseIdleConnections closes the idle connections of the Web API client,
// and of the webhook client when New built it.
func (c *Channel) CloseIdleConnections() {
	if c.ownClient {
		c.client.CloseIdleConnections()
	}
	if c.api != nil {
		c.api.doer.client.CloseIdleConnections()
	}
}

// Send delivers msg to ep: to an incoming webhook when ep.Address is a URL,
// else to the Slack channel ep.Address names, threaded per incident (see
// the package documentation). The receipt's BodySHA256 is the hash of the
// message JSON (msg.Body, or the text-only message made of msg.Text): the
// very body POSTed to an incoming webhook; in bot mode, the message Slack
// is asked to post (slack-go sends its fields form-encoded). It makes at most one attempt per Slack call
// and never retries by itself. Errors are classified for the dispatcher
// and never hold the bot token or a webhook URL.
func (c *Channel) Send(ctx context.Context, ep channels.Endpoint, msg *channels.Message) (channels.Receipt, error) {
	if msg == nil || msg.ID == "" {
		return channels.Receipt{}, channels.Permanent(errors.New("slack: message has no delivery id"))
	}
	if len(msg.Body) == 0 && msg.Text != "" {
		// The plain-text rendering, as a text-only Slack message.
		fallback := *msg
		fallback.Body, _ = json.Marshal(struct {
			Text string `json:"text"`
		}{msg.Text})
		msg = &fallback
	}
	addr := strings.TrimSpace(ep.Address)
	switch {
	case strings.Contains(addr, "://"):
		return c.sendWebhook(ctx, addr, msg)
	case IsChannelID(addr):
		if c.api == nil {
			return channels.Receipt{}, channels.Permanent(fmt.Errorf("slack channel %s: %w", addr, ErrBotModeUnavailable))
		}
		return c.sendBot(ctx, addr, msg)
	}
	return channels.Receipt{}, channels.Permanent(fmt.Errorf("slack: %w: neither a webhook URL nor a channel id", ErrInvalidAddress))
}

var contentTypeJSON = []string{"application/json; charset=utf-8"}

// sendWebhook POSTs msg.Body to an incoming webhook.
func (c *Channel) sendWebhook(ctx context.Context, raw string, msg *channels.Message) (channels.Receipt, error) {
	h, err := c.hooks.get(raw, c.cfg.WebhookHosts, c.cfg.AllowHTTP)
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("slack: %w", err))
	}
	if err := c.checks.check("body", msg.Body); err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("slack webhook %s: %w", h.host, err))
	}
	if err := c.limits.wait(ctx, h.key); err != nil {
		return channels.Receipt{}, fmt.Errorf("slack webhook %s: %w", h.host, err)
	}
	start := c.cfg.Now()
	sum := channels.HashBody(msg.Body)
	req := egress.NewPost(ctx, h.u, http.Header{"Content-Type": contentTypeJSON}, msg.Body)
	resp, err := c.client.Do(req)
	if err != nil {
		if err = egress.Cause(err); egress.Refused(err) {
			err = channels.Permanent(err)
		}
		return channels.Receipt{Duration: c.cfg.Now().Sub(start), BodySHA256: sum}, fmt.Errorf("slack webhook %s: %w", h.host, err)
	}
	receipt := channels.Receipt{Status: resp.StatusCode, Detail: "slack webhook " + h.host, BodySHA256: sum}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_ = egress.DrainClose(resp.Body, c.cfg.MaxResponseBytes)
		receipt.Duration = c.cfg.Now().Sub(start)
		c.debug(ctx, "slack webhook delivered", msg, slog.String("webhook", h.masked), slog.Int("status", resp.StatusCode), slog.Duration("duration", receipt.Duration))
		return receipt, nil
	}
	head, truncated := egress.ReadHead(resp.Body, summaryReadBytes, c.cfg.MaxResponseBytes)
	now := c.cfg.Now()
	receipt.Duration = now.Sub(start)
	code, summary := parseAnswer(head, truncated, h.secrets)
	err = classify(resp.StatusCode, resp.Header, code, summary, true, now)
	c.logRefusal(ctx, "slack webhook refused", msg, err, slog.String("webhook", h.masked), slog.Int("status", resp.StatusCode), slog.String("code", code))
	return receipt, fmt.Errorf("slack webhook %s: %w", h.host, err)
}

func (c *Channel) debug(ctx context.Context, text string, msg *channels.Message, attrs ...slog.Attr) {
	if !c.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs = append(attrs, slog.String("delivery", msg.ID), slog.Int("attempt", msg.Attempt))
	c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, text, attrs...)
}

// logRefusal logs a refused send: at error level when the bot token is at
// fault (every bot endpoint fails until an operator acts), else at debug.
func (c *Channel) logRefusal(ctx context.Context, text string, msg *channels.Message, err error, attrs ...slog.Attr) {
	level := slog.LevelDebug
	if errors.Is(err, ErrBotToken) {
		level = slog.LevelError
	}
	if !c.cfg.Logger.Enabled(ctx, level) {
		return
	}
	attrs = append(attrs, slog.String("delivery", msg.ID), slog.Int("attempt", msg.Attempt), slog.String("error", err.Error()))
	c.cfg.Logger.LogAttrs(ctx, level, text, attrs...)
}

// since is how long ago start was on the configured clock.
func (c *Channel) since(start time.Time) time.Duration { return c.cfg.Now().Sub(start) }
