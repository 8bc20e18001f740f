package slack

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald/secret"
)

// Default values of [Config] fields.
const (
	// DefaultAPIURL is Slack's Web API.
	DefaultAPIURL = "https://slack.com/api/"
	// DefaultTimeout bounds one call to Slack.
	DefaultTimeout = 15 * time.Second
	// DefaultPerChannelInterval is Slack's documented pace: one message
	// per second per channel.
	DefaultPerChannelInterval = time.Second
	// DefaultMaxRateWait is the longest Send waits for its channel's turn.
	DefaultMaxRateWait = 5 * time.Second
	// DefaultThreadLease is how long one delivery may hold a thread.
	DefaultThreadLease = 2 * time.Minute
	// DefaultMaxResponseBytes bounds how much of an answer is read.
	DefaultMaxResponseBytes = 1 << 20
)

// DefaultWebhookHosts are the hosts Slack serves incoming webhooks from.
func DefaultWebhookHosts() []string { return []string{"hooks.slack.com", "hooks.slack-gov.com"} }

// Config configures the Slack channel.
type Config struct {
	// BotToken is the bot user OAuth token ("xoxb-…") Herald posts with
	// to channel-id endpoints (scope chat:write). Defaults to none: bot
	// mode is unavailable and channel-id endpoints fail permanently with
	// [ErrBotModeUnavailable].
	BotToken secret.Value
	// APIURL is the base URL of Slack's Web API, ending in "/". Defaults
	// to [DefaultAPIURL]; tests point it at a local server.
	APIURL string
	// HTTPClient posts to incoming webhooks. Callers pass a client built
	// by package egress, so that the SSRF guard applies to the URLs
	// partners give. Defaults to an egress client with Timeout.
	HTTPClient *http.Client
	// WebhookHosts are the host names an incoming-webhook URL may point
	// at (compared without case). Defaults to [DefaultWebhookHosts].
	WebhookHosts []string
	// AllowHTTP accepts http:// webhook URLs. Defaults to false (tests set
	// it).
	AllowHTTP bool
	// Timeout bounds one call to the Web API, from dial to the end of the
	// answer (the webhook client brings its own). Defaults to
	// [DefaultTimeout].
	Timeout time.Duration
	// PerChannelInterval is the minimum spacing of the messages this
	// process posts to one Slack channel or incoming webhook. Defaults to
	// [DefaultPerChannelInterval]; a negative value turns the limiter off
	// (Slack's own rate-limit answers still apply).
	PerChannelInterval time.Duration
	// MaxRateWait is the longest Send waits for its channel's turn; when
	// the turn is further away, Send returns a retryable error carrying
	// the delay instead of holding the worker. Defaults to
	// [DefaultMaxRateWait].
	MaxRateWait time.Duration
	// Threads stores the (incident, channel) → thread records of bot
	// mode: a [KVThreads] in production. Required when BotToken is set.
	Threads ThreadStore
	// ThreadLease is how long one delivery may hold an incident's thread
	// in a channel before another process may take it over (the holder
	// crashed). The holder renews it after each step, so it must exceed
	// the longest step, MaxRateWait + 2 × Timeout: then a send's edit of
	// the parent always ends before another may start. Defaults to
	// [DefaultThreadLease], or twice the longest step if that is longer.
	ThreadLease time.Duration
	// ReplyFirstUpdate also posts the first update of an incident as the
	// first reply of its thread, so that the thread holds every update's
	// full text. Defaults to false: the first update posts the parent
	// only (its title, status, summary and facts), and each later update
	// one reply.
	ReplyFirstUpdate bool
	// MaxResponseBytes bounds how much of an answer is read. Defaults to
	// [DefaultMaxResponseBytes].
	MaxResponseBytes int64
	// Now is the clock of leases, limiters and Retry-After dates.
	// Defaults to time.Now.
	Now func() time.Time
	// Logger receives debug lines about sends (channel ids, masked
	// webhook URLs, delivery ids, Slack codes; never a token or a webhook
	// URL) and warnings. Defaults to a logger that discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with the zero fields set to their
// defaults. It does not build the default HTTPClient: [New] does.
func (c Config) WithDefaults() Config {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if !strings.HasSuffix(c.APIURL, "/") {
		c.APIURL += "/"
	}
	if c.WebhookHosts == nil {
		c.WebhookHosts = DefaultWebhookHosts()
	} else {
		hosts := make([]string, len(c.WebhookHosts))
		for i, h := range c.WebhookHosts {
			hosts[i] = strings.ToLower(h)
		}
		c.WebhookHosts = hosts
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.PerChannelInterval == 0 {
		c.PerChannelInterval = DefaultPerChannelInterval
	}
	if c.MaxRateWait == 0 {
		c.MaxRateWait = DefaultMaxRateWait
	}
	if c.ThreadLease == 0 {
		c.ThreadLease = max(DefaultThreadLease, 2*(c.MaxRateWait+2*c.Timeout))
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
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
	case c.Timeout < 0 || c.MaxRateWait < 0 || c.ThreadLease < 0:
		return errors.New("slack: Timeout, MaxRateWait and ThreadLease must not be negative")
	case c.MaxResponseBytes < 0:
		return errors.New("slack: MaxResponseBytes must not be negative")
	case c.ThreadLease <= c.MaxRateWait+2*c.Timeout:
		return fmt.Errorf("slack: ThreadLease (%s) must exceed MaxRateWait + 2 × Timeout (%s)", c.ThreadLease, c.MaxRateWait+2*c.Timeout)
	case !c.BotToken.IsZero() && c.Threads == nil:
		return errors.New("slack: bot mode needs a ThreadStore (Config.Threads)")
	case strings.ContainsAny(c.BotToken.Reveal(), " \t\r\n"):
		return errors.New("slack: the bot token holds white space")
	}
	u, err := url.Parse(c.APIURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("slack: APIURL must be an http(s) URL without credentials")
	}
	for _, h := range c.WebhookHosts {
		if h == "" || strings.ContainsAny(h, "/:@ ") {
			return fmt.Errorf("slack: invalid webhook host %q", h)
		}
	}
	return nil
}
