package sms

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"
	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/secret"
)

// DefaultBaseURL is Twilio's REST API.
const DefaultBaseURL = "https://api.twilio.com"

// DefaultRate is the default of [Config.Rate], in messages per second:
// Twilio's queue rate for a long code.
const DefaultRate = 10

// Config configures the SMS channel.
type Config struct {
	// AccountSID is the Twilio account ("AC" and 32 hex digits). Required.
	AccountSID string
	// AuthToken is the account's auth token. It authenticates API calls
	// unless APIKey is set, and it is the key Twilio signs status
	// callbacks with, so it is required whenever StatusCallback is set.
	AuthToken secret.Value
	// APIKey and APISecret are an API key ("SK" and 32 hex digits) and its
	// secret, the alternative to AuthToken for API calls. When APIKey is
	// set, API calls use it and AuthToken serves only to verify
	// callbacks. Defaults to none.
	APIKey    string
	APISecret secret.Value
	// From is the sender: an E.164 number, a short code or an
	// alphanumeric sender id. At least one of From and
	// MessagingServiceSID is required; with both, From must belong to the
	// service's sender pool.
	From string
	// MessagingServiceSID is a Messaging Service ("MG" and 32 hex digits)
	// that picks the sender.
	MessagingServiceSID string
	// StatusCallback is the public URL Twilio posts delivery receipts to:
	// Herald's public base URL followed by [CallbackPath] (see
	// [CallbackURL]). Send adds the delivery, subscriber and endpoint ids
	// to its query. Defaults to none: no receipts are requested.
	StatusCallback string
	// BaseURL is Twilio's API base URL. Defaults to [DefaultBaseURL];
	// tests point it at a local server.
	BaseURL string
	// Timeout bounds one send, from the rate limiter to the end of
	// Twilio's answer. Defaults to 15 s.
	Timeout time.Duration
	// Rate is the most messages per second sent to Twilio, and Burst how
	// many may go at once. Rate defaults to [DefaultRate] and Burst to 1; rate.Inf
	// disables the limit. Twilio queues what a sender cannot send at once
	// (a long code sends 1 segment/s, a toll-free number 3, a short code
	// 100), so the limit spares the API, not the senders.
	Rate  rate.Limit
	Burst int
	// HTTPClient's Transport carries the requests to Twilio. Its Timeout
	// and redirect policy are not used: Timeout above bounds a send, and
	// redirects are never followed. Defaults to a client with its own
	// connection pool.
	HTTPClient *http.Client
	// Now is the clock that times sends. Defaults to time.Now.
	Now func() time.Time
	// Logger receives debug lines about sends and callbacks (ids, status
	// and error codes; never credentials or phone numbers). Defaults to a
	// logger that discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with the zero fields set to their
// defaults.
func (c Config) WithDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	apiKeyPattern     = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	shortCodePattern  = regexp.MustCompile(`^[0-9]{3,8}$`)
	alphaSender       = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	credentialPattern = regexp.MustCompile(`^[A-Za-z0-9]+$`)
)

func (c Config) validate() error {
	if !accountSIDPattern.MatchString(c.AccountSID) {
		return errors.New(`sms: AccountSID must be "AC" followed by 32 hex digits`)
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if c.From == "" && c.MessagingServiceSID == "" {
		return errors.New("sms: one of From and MessagingServiceSID is required")
	}
	if c.From != "" {
		if err := validateSender(c.From); err != nil {
			return err
		}
	}
	if c.MessagingServiceSID != "" && !serviceSIDPattern.MatchString(c.MessagingServiceSID) {
		return errors.New(`sms: MessagingServiceSID must be "MG" followed by 32 hex digits`)
	}
	if c.StatusCallback != "" {
		if _, err := parseCallbackURL(c.StatusCallback); err != nil {
			return err
		}
		if c.AuthToken.IsZero() {
			return errors.New("sms: AuthToken is required with StatusCallback: Twilio signs callbacks with it")
		}
	}
	if err := validateBaseURL(c.BaseURL); err != nil {
		return err
	}
	switch {
	case c.Timeout < 0:
		return errors.New("sms: Timeout must not be negative")
	case c.Rate < 0:
		return errors.New("sms: Rate must not be negative")
	case c.Burst < 0:
		return errors.New("sms: Burst must not be negative")
	}
	return nil
}

// validateAuth checks the credentials without ever quoting them.
func (c Config) validateAuth() error {
	if c.APIKey == "" && c.AuthToken.IsZero() {
		return errors.New("sms: AuthToken, or APIKey and APISecret, are required")
	}
	if !c.AuthToken.IsZero() && !credentialPattern.MatchString(c.AuthToken.Reveal()) {
		return errors.New("sms: AuthToken must be letters and digits only")
	}
	if c.APIKey != "" {
		if !apiKeyPattern.MatchString(c.APIKey) {
			return errors.New(`sms: APIKey must be "SK" followed by 32 hex digits`)
		}
		if !credentialPattern.MatchString(c.APISecret.Reveal()) {
			return errors.New("sms: APISecret is required with APIKey, letters and digits only")
		}
	} else if !c.APISecret.IsZero() {
		return errors.New("sms: APISecret is set without APIKey")
	}
	return nil
}

// validateSender accepts an E.164 number, a short code or an alphanumeric
// sender id (up to 11 letters, digits and spaces, at least one letter).
func validateSender(from string) error {
	switch {
	case strings.HasPrefix(from, "+"):
		n, err := Normalize(from)
		if err != nil {
			return fmt.Errorf("sms: From: %w", err)
		}
		if n != from {
			return fmt.Errorf("sms: From must be in E.164 form (%s)", n)
		}
		return nil
	case shortCodePattern.MatchString(from):
		return nil
	case alphaSender.MatchString(from) && strings.ContainsFunc(from, isLetter):
		return nil
	}
	return errors.New("sms: From must be an E.164 number, a short code or an alphanumeric sender id of at most 11 characters")
}

func isLetter(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }

func validateBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("sms: BaseURL must be an absolute http(s) URL without credentials, query or fragment")
	}
	return nil
}

// Channel sends SMS through Twilio's Programmable Messaging API. It is safe
// for concurrent use; reuse one Channel for all sends, it keeps the
// connection pool and the rate limiter.
type Channel struct {
	cfg         Config
	creds       *twclient.Credentials
	transport   http.RoundTripper
	ownPool     bool
	baseURL     string
	limiter     *rate.Limiter
	callback    *url.URL // nil without StatusCallback
	verifier    *CallbackVerifier
	redact      []string // credentials to strip from provider answers
	numbers     numbers
	userAgentEx []string
}

var _ channels.Channel = (*Channel)(nil)

// New returns an SMS channel.
func New(cfg Config) (*Channel, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Channel{
		cfg:         cfg,
		baseURL:     strings.TrimRight(cfg.BaseURL, "/"),
		limiter:     rate.NewLimiter(cfg.Rate, cfg.Burst),
		userAgentEx: []string{"herald-sms/1.0"},
	}
	if cfg.APIKey != "" {
		c.creds = twclient.NewCredentials(cfg.APIKey, cfg.APISecret.Reveal())
	} else {
		c.creds = twclient.NewCredentials(cfg.AccountSID, cfg.AuthToken.Reveal())
	}
	c.redact = credentialForms(cfg)
	switch {
	case cfg.HTTPClient == nil:
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		c.transport, c.ownPool = tr, true
	case cfg.HTTPClient.Transport == nil:
		c.transport = http.DefaultTransport
	default:
		c.transport = cfg.HTTPClient.Transport
	}
	if cfg.StatusCallback != "" {
		c.callback, _ = parseCallbackURL(cfg.StatusCallback) // checked by validate
		v, err := NewCallbackVerifier(cfg)
		if err != nil {
			return nil, err
		}
		c.verifier = v
	}
	return c, nil
}

// CallbackVerifier returns the verifier of the status callbacks this
// channel asks for, or nil when Config.StatusCallback is not set.
func (c *Channel) CallbackVerifier() *CallbackVerifier { return c.verifier }

// CloseIdleConnections closes the connections kept for reuse, when the
// channel owns its connection pool.
func (c *Channel) CloseIdleConnections() {
	if tr, ok := c.transport.(*http.Transport); ok && c.ownPool {
		tr.CloseIdleConnections()
	}
}

// Send sends msg.Text to ep.Address, an E.164 phone number checked and
// normalised again here, from Config.From or through
// Config.MessagingServiceSID, asking for a status callback when
// Config.StatusCallback is set. The receipt carries the Message SID as
// ProviderID, Twilio's HTTP status, and the message status ("queued",
// "accepted") as Detail.
//
// Outcomes:
//
//   - an invalid number, and Twilio errors 21211 (invalid 'To' number) and
//     21614 (not a mobile number): permanent, and the endpoint disabled
//     ([channels.Disable]);
//   - Twilio error 21610 (the recipient replied STOP): permanent, and the
//     address suppressed ([channels.Suppress]);
//   - HTTP 429, Twilio error 20429 (too many requests) and 21611 (the
//     sender's queue is full), 408, 425 and 5xx: retryable, honouring
//     Retry-After ([channels.RetryAfter]);
//   - timeouts, connection errors, and a rate-limiter wait longer than
//     ctx allows: retryable;
//   - any other refusal (other 4xx, a redirect): permanent, with Twilio's
//     code in a [channels.ProviderError].
//
// A 2xx answer is a delivery even when its body cannot be read: Twilio
// accepted the message, and sending it again would duplicate it. Send makes
// one request at most and never retries by itself. Errors and logs never
// hold the credentials.
func (c *Channel) Send(ctx context.Context, ep channels.Endpoint, msg *channels.Message) (channels.Receipt, error) {
	if msg == nil || strings.TrimSpace(msg.Text) == "" {
		return channels.Receipt{}, channels.Permanent(errors.New("sms: message has no text"))
	}
	to, err := c.numbers.normalize(ep.Address)
	if err != nil {
		return channels.Receipt{}, channels.Disable(fmt.Errorf("sms: endpoint address: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if err := c.limiter.Wait(ctx); err != nil {
		return channels.Receipt{}, fmt.Errorf("sms: rate limit: %w", err)
	}
	start := c.cfg.Now()

	params := &twapi.CreateMessageParams{}
	params.SetTo(to)
	params.SetBody(msg.Text)
	if c.cfg.From != "" {
		params.SetFrom(c.cfg.From)
	}
	if c.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(c.cfg.MessagingServiceSID)
	}
	if c.callback != nil {
		params.SetStatusCallback(callbackFor(c.callback, ep, msg))
	}

	x := c.newExchange(ctx)
	m, err := x.api().CreateMessage(params)
	defer x.close()
	now := c.cfg.Now()
	receipt := channels.Receipt{Duration: now.Sub(start), BodySHA256: channels.HashBody([]byte(msg.Text))}
	if x.resp == nil {
		return receipt, c.requestError(ctx, err)
	}
	receipt.Status = x.resp.StatusCode
	if x.resp.StatusCode >= 200 && x.resp.StatusCode < 300 {
		receipt.Detail = "accepted"
		if err == nil && m != nil {
			if m.Sid != nil {
				receipt.ProviderID = channels.Printable(*m.Sid, 64)
			}
			if m.Status != nil && *m.Status != "" {
				receipt.Detail = channels.Printable(*m.Status, 32)
			}
		} else {
			c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "twilio accepted a message with an unreadable answer",
				slog.String("delivery", msg.ID), slog.Int("status", x.resp.StatusCode))
		}
		c.debug(ctx, "sms accepted", ep, msg, receipt, "")
		return receipt, nil
	}
	out := c.refusal(x, err, now)
	var pe *channels.ProviderError
	code := ""
	if errors.As(out, &pe) {
		code = pe.Code
	}
	c.debug(ctx, "sms refused", ep, msg, receipt, code)
	return receipt, fmt.Errorf("sms: %w", out)
}

// requestError classifies a send that got no answer: a request twilio-go
// refused to make is permanent (it would be refused again); anything else
// (timeout, connection refused or reset, a cancelled context) is retryable.
func (c *Channel) requestError(ctx context.Context, err error) error {
	if err == nil {
		err = errors.New("no answer")
	}
	var te *twclient.TwilioRestError
	if errors.As(err, &te) {
		return channels.Permanent(fmt.Errorf("sms: request refused before sending: %w", &channels.ProviderError{
			Code: fmt.Sprint(te.Code), Message: channels.Printable(channels.Redact(te.Message, false, c.redact...), summaryRunes),
		}))
	}
	err = egress.Cause(err) // *url.Error quotes the URL
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%w)", ctxErr, err)
	}
	return fmt.Errorf("sms: twilio: %w", err)
}

func (c *Channel) debug(ctx context.Context, text string, ep channels.Endpoint, msg *channels.Message, r channels.Receipt, code string) {
	if !c.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, text,
		slog.String("delivery", msg.ID), slog.String("subscriber", ep.SubscriberID),
		slog.String("endpoint", ep.ID), slog.Int("attempt", msg.Attempt),
		slog.Int("status", r.Status), slog.String("code", code),
		slog.String("sid", r.ProviderID), slog.Duration("duration", r.Duration))
}

// callbackFor returns the status callback URL of one message: the
// configured URL with the ids that let the receipt find its delivery.
func callbackFor(base *url.URL, ep channels.Endpoint, msg *channels.Message) string {
	q := base.Query()
	q.Set(queryDelivery, msg.ID)
	if ep.SubscriberID != "" {
		q.Set(querySubscriber, ep.SubscriberID)
	}
	if ep.ID != "" {
		q.Set(queryEndpoint, ep.ID)
	}
	u := *base
	u.RawQuery = q.Encode()
	return u.String()
}
