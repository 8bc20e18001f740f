package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/email"
	"github.com/heraldhq/herald/channels/slack"
	"github.com/heraldhq/herald/channels/sms"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// fileConfig is Herald's configuration file (YAML or TOML, chosen by the
// file's extension). Every field is optional; environment variables
// override the file and flags override both.
type fileConfig struct {
	// Data is the data directory (embedded NATS store, outbox, generated
	// secrets). Env HERALD_DATA. Defaults to ./herald-data.
	Data string `yaml:"data" toml:"data"`
	// Listen is the HTTP API address. Env HERALD_LISTEN. Defaults to
	// 127.0.0.1:8080.
	Listen string `yaml:"listen" toml:"listen"`
	// PublicListen is the address of the public pages (subscribe,
	// preferences, unsubscribe) and provider callbacks: the one to expose.
	// Env HERALD_PUBLIC_LISTEN. Defaults to 127.0.0.1:8081.
	PublicListen string `yaml:"public_listen" toml:"public_listen"`
	// PublicURL is the base URL of the public endpoints (links in
	// messages, provider callbacks). Env HERALD_PUBLIC_URL. Defaults to
	// http://<public_listen>.
	PublicURL string `yaml:"public_url" toml:"public_url"`
	// AdminToken protects /v1. Env HERALD_ADMIN_TOKEN. Defaults to a token
	// generated once and kept in <data>/admin-token.
	AdminToken secret.Value `yaml:"admin_token" toml:"admin_token"`
	// SecretKey seals unsubscribe links; processes sharing a cluster must
	// share it. Env HERALD_SECRET_KEY. Defaults to a key generated once
	// and kept in <data>/secret-key.
	SecretKey secret.Value `yaml:"secret_key" toml:"secret_key"`
	// PreviousSecretKey still opens the links sealed before the secret
	// key was rotated (keep it as long as the links live: 90 days for
	// unsubscribe links). Env HERALD_PREVIOUS_SECRET_KEY.
	PreviousSecretKey secret.Value `yaml:"previous_secret_key" toml:"previous_secret_key"`
	Log               logConfig    `yaml:"log" toml:"log"`
	// Portal tunes the public pages.
	Portal portalConfig `yaml:"portal" toml:"portal"`
	NATS   natsConfig   `yaml:"nats" toml:"nats"`
	// Components is the component catalog. Defaults to the built-in one.
	Components []incident.Component `yaml:"components" toml:"components"`
	Templates  templatesConfig      `yaml:"templates" toml:"templates"`
	Dispatch   dispatchConfig       `yaml:"dispatch" toml:"dispatch"`
	Webhook    webhookConfig        `yaml:"webhook" toml:"webhook"`
	// Email configures SMTP submission; without a host, email goes to
	// the outbox.
	Email emailConfig `yaml:"email" toml:"email"`
	// SMS configures Twilio; without an account SID, SMS go to the
	// outbox.
	SMS smsConfig `yaml:"sms" toml:"sms"`
	// Slack configures the Slack channel; unless live, Slack messages go
	// to the outbox.
	Slack slackConfig `yaml:"slack" toml:"slack"`
	// RequireLocales lists, per priority, the languages an update must
	// carry to be published ({P1: [fr, en, it]}): POST /v1/incidents
	// and herald publish refuse one that lacks any (400 / exit 2) unless
	// a fallback is allowed. Defaults to none.
	RequireLocales dispatcher.RequiredLocales `yaml:"require_locales" toml:"require_locales"`
	// Strict refuses to start when a channel that subscribers' endpoints
	// use has no provider (their messages would only reach the outbox),
	// and refuses new endpoints on such channels. Env HERALD_STRICT, flag
	// --strict. Defaults to false.
	Strict bool `yaml:"strict" toml:"strict"`
	// Ingest configures the status-page sources (see ingest.go).
	Ingest ingestConfig `yaml:"ingest" toml:"ingest"`
	// Maintenance tunes the notifications of scheduled maintenance.
	Maintenance maintenanceConfig `yaml:"maintenance" toml:"maintenance"`
	// MemoryLimit is serve's soft memory limit (96MiB, 1GiB): the garbage
	// collector works harder as the process nears it. Env
	// HERALD_MEMORY_LIMIT, flag --memory-limit. Defaults to GOMEMLIMIT
	// when set, else 64 MiB as a floor: above it the limit follows the
	// live heap with 25 % headroom (see the README's capacity planning).
	MemoryLimit byteSize `yaml:"memory_limit" toml:"memory_limit"`

	// resolver is the one DNS cache every guarded client of serve shares
	// (webhooks, Slack, polled status pages); nil: each builds its own.
	resolver egress.Resolver
}

type maintenanceConfig struct {
	// Reminders lists, per channel, how long before a maintenance's
	// window reminders go out ({email: [24h, 1h], sms: [1h]}). A channel
	// not named keeps its default (24h and 1h for email, Slack and
	// webhooks, 1h for SMS); an empty list ([]) sends it none.
	Reminders map[string][]time.Duration `yaml:"reminders" toml:"reminders"`
}

type slackConfig struct {
	// BotToken (xoxb-...) posts to channel-id endpoints, threading
	// updates under one living message per incident. Env
	// HERALD_SLACK_BOT_TOKEN. Setting it makes Slack live.
	BotToken secret.Value `yaml:"bot_token" toml:"bot_token"`
	// Live sends to Slack (incoming webhooks need no token). Defaults to
	// true when a bot token is set, else false (outbox).
	Live *bool `yaml:"live" toml:"live"`
	// PerChannelInterval is the least time between two messages to one
	// Slack channel. Defaults to 1s.
	PerChannelInterval time.Duration `yaml:"per_channel_interval" toml:"per_channel_interval"`
	// APIURL is the base URL of Slack's Web API: GovSlack's
	// (https://slack-gov.com/api/), or a local Slack-shaped server for an
	// end-to-end run. Env HERALD_SLACK_API_URL. Defaults to
	// https://slack.com/api/.
	APIURL string `yaml:"api_url" toml:"api_url"`
	// WebhookHosts are the hosts incoming-webhook URLs may point at, for
	// subscribers' endpoints and sends alike. Defaults to hooks.slack.com
	// and hooks.slack-gov.com.
	WebhookHosts []string `yaml:"webhook_hosts" toml:"webhook_hosts"`
}

// live reports whether Slack messages go to Slack.
func (c slackConfig) live() bool {
	if c.Live != nil {
		return *c.Live
	}
	return !c.BotToken.IsZero()
}

type emailConfig struct {
	// Host and Port of the SMTP submission server. Env HERALD_SMTP_HOST.
	// Port defaults to 587 (465 with tls: implicit).
	Host string `yaml:"host" toml:"host"`
	Port int    `yaml:"port" toml:"port"`
	// Username and Password authenticate. Env HERALD_SMTP_USERNAME,
	// HERALD_SMTP_PASSWORD.
	Username string       `yaml:"username" toml:"username"`
	Password secret.Value `yaml:"password" toml:"password"`
	// Auth is auto, plain, login or cram-md5. Defaults to auto.
	Auth string `yaml:"auth" toml:"auth"`
	// TLS is starttls (default, mandatory), implicit or none (refused
	// with credentials).
	TLS string `yaml:"tls" toml:"tls"`
	// From and ReplyTo of every message ("Status <status@pay.example>").
	From    string `yaml:"from" toml:"from"`
	ReplyTo string `yaml:"reply_to" toml:"reply_to"`
	// ListID is the List-Id header ("<incidents.status.pay.example>").
	ListID string `yaml:"list_id" toml:"list_id"`
	// UnsubscribeMailto adds a mailto: to List-Unsubscribe.
	UnsubscribeMailto string `yaml:"unsubscribe_mailto" toml:"unsubscribe_mailto"`
	// Pool is the number of SMTP connections kept open. Defaults to 4.
	Pool int `yaml:"pool" toml:"pool"`
	// Rate limits messages per second (0: unlimited). The delivery loop
	// applies it, unless dispatch.channels.email.rate is set.
	Rate float64 `yaml:"rate" toml:"rate"`
	// DKIM signs messages when set.
	DKIM *dkimConfig `yaml:"dkim" toml:"dkim"`
}

type dkimConfig struct {
	Domain   string `yaml:"domain" toml:"domain"`
	Selector string `yaml:"selector" toml:"selector"`
	// KeyFile holds the PEM private key (RSA or Ed25519). Env
	// HERALD_DKIM_KEY_FILE.
	KeyFile string `yaml:"key_file" toml:"key_file"`
}

type smsConfig struct {
	// AccountSID and AuthToken (or APIKey and APISecret) authenticate to
	// Twilio. Env HERALD_TWILIO_ACCOUNT_SID, HERALD_TWILIO_AUTH_TOKEN,
	// HERALD_TWILIO_API_KEY, HERALD_TWILIO_API_SECRET.
	AccountSID string       `yaml:"account_sid" toml:"account_sid"`
	AuthToken  secret.Value `yaml:"auth_token" toml:"auth_token"`
	APIKey     string       `yaml:"api_key" toml:"api_key"`
	APISecret  secret.Value `yaml:"api_secret" toml:"api_secret"`
	// From is the sending number, or MessagingServiceSID the messaging
	// service.
	From                string `yaml:"from" toml:"from"`
	MessagingServiceSID string `yaml:"messaging_service_sid" toml:"messaging_service_sid"`
	// Rate limits messages per second. Defaults to 10. The delivery loop
	// applies it, unless dispatch.channels.sms.rate is set.
	Rate float64 `yaml:"rate" toml:"rate"`
	// BaseURL overrides https://api.twilio.com (regional edges, tests).
	BaseURL string `yaml:"base_url" toml:"base_url"`
	// Countries lists the ISO 3166 codes of the countries SMS endpoints
	// may be in (["FR", "BE", "IT"]). Defaults to every country. Only
	// mobile numbers are accepted in any case.
	Countries []string `yaml:"countries" toml:"countries"`
	// DailyCap is the most SMS one subscriber receives per day (P1 not
	// counted). Defaults to 20; -1 for none.
	DailyCap int64 `yaml:"daily_cap" toml:"daily_cap"`
	// PlatformDailyCap is the most SMS sent per day in all, P1 included.
	// Defaults to 50000; -1 for none.
	PlatformDailyCap int64 `yaml:"platform_daily_cap" toml:"platform_daily_cap"`
}

type portalConfig struct {
	// TrustProxyHeaders reads the client address from X-Forwarded-For
	// (behind a reverse proxy). Defaults to false.
	TrustProxyHeaders bool `yaml:"trust_proxy_headers" toml:"trust_proxy_headers"`
	// Per-IP, per-address and per-phone-prefix rate limits: requests per
	// window. Defaults: 30 per 10m, 5 per 1h, 10 per 1h.
	IPLimit           int64         `yaml:"ip_limit" toml:"ip_limit"`
	IPWindow          time.Duration `yaml:"ip_window" toml:"ip_window"`
	AddressLimit      int64         `yaml:"address_limit" toml:"address_limit"`
	AddressWindow     time.Duration `yaml:"address_window" toml:"address_window"`
	PhonePrefixLimit  int64         `yaml:"phone_prefix_limit" toml:"phone_prefix_limit"`
	PhonePrefixWindow time.Duration `yaml:"phone_prefix_window" toml:"phone_prefix_window"`
}

type logConfig struct {
	// Format is "text" or "json". Env HERALD_LOG_FORMAT. Defaults to text.
	Format string `yaml:"format" toml:"format"`
	// Level is debug, info, warn or error. Env HERALD_LOG_LEVEL. Defaults
	// to info.
	Level string `yaml:"level" toml:"level"`
}

type natsConfig struct {
	// URL of an external NATS server or cluster; empty runs the embedded
	// server. Env HERALD_NATS_URL.
	URL string `yaml:"url" toml:"url"`
	// Creds is a credentials file. Env HERALD_NATS_CREDS.
	Creds string `yaml:"creds" toml:"creds"`
	// Token authenticates to URL. Env HERALD_NATS_TOKEN.
	Token secret.Value `yaml:"token" toml:"token"`
	// User and Password authenticate to URL. Env HERALD_NATS_USER,
	// HERALD_NATS_PASSWORD.
	User     string       `yaml:"user" toml:"user"`
	Password secret.Value `yaml:"password" toml:"password"`
	// TLS files for URL.
	TLSCA   string `yaml:"tls_ca" toml:"tls_ca"`
	TLSCert string `yaml:"tls_cert" toml:"tls_cert"`
	TLSKey  string `yaml:"tls_key" toml:"tls_key"`
	// Listen is where the embedded server accepts CLI connections.
	// Defaults to 127.0.0.1:4222; "none" for in-process only.
	Listen string `yaml:"listen" toml:"listen"`
	// SyncAlways fsyncs every write of the embedded server (slower; no
	// loss even on power failure). Defaults to false.
	SyncAlways bool `yaml:"sync_always" toml:"sync_always"`
	// Replicas of streams and buckets: 1, or 3 on a cluster.
	Replicas int `yaml:"replicas" toml:"replicas"`
}

type templatesConfig struct {
	// Dir overrides embedded templates file by file.
	Dir string `yaml:"dir" toml:"dir"`
	// Fallback is the locale fallback chain. Defaults to [en, fr].
	Fallback []string `yaml:"fallback" toml:"fallback"`
	// SMSSegments is the SMS budget. Defaults to 2.
	SMSSegments int `yaml:"sms_segments" toml:"sms_segments"`
}

type dispatchConfig struct {
	MaxEventBytes        int                              `yaml:"max_event_bytes" toml:"max_event_bytes"`
	UnratedPriority      incident.Priority                `yaml:"unrated_priority" toml:"unrated_priority"`
	DuplicateWindow      time.Duration                    `yaml:"duplicate_window" toml:"duplicate_window"`
	DeliveryLogRetention time.Duration                    `yaml:"delivery_log_retention" toml:"delivery_log_retention"`
	DeadLetterRetention  time.Duration                    `yaml:"dead_letter_retention" toml:"dead_letter_retention"`
	SuppressionTTL       time.Duration                    `yaml:"suppression_ttl" toml:"suppression_ttl"`
	FanoutAckWait        time.Duration                    `yaml:"fanout_ack_wait" toml:"fanout_ack_wait"`
	FanoutMaxPending     int                              `yaml:"fanout_max_pending" toml:"fanout_max_pending"`
	SubscriberCache      int                              `yaml:"subscriber_cache" toml:"subscriber_cache"`
	BatchSize            int                              `yaml:"batch_size" toml:"batch_size"`
	LeaseTTL             time.Duration                    `yaml:"lease_ttl" toml:"lease_ttl"`
	ShutdownTimeout      time.Duration                    `yaml:"shutdown_timeout" toml:"shutdown_timeout"`
	Channels             map[string]channelDispatchConfig `yaml:"channels" toml:"channels"`
}

type channelDispatchConfig struct {
	Concurrency    int `yaml:"concurrency" toml:"concurrency"`
	PerDestination int `yaml:"per_destination" toml:"per_destination"`
	// Each field is the dispatcher.ChannelConfig field of the same name.
	Pace               time.Duration `yaml:"pace" toml:"pace"`
	MaxDestinationWait time.Duration `yaml:"max_destination_wait" toml:"max_destination_wait"`
	Rate               float64       `yaml:"rate" toml:"rate"`
	Burst              int           `yaml:"burst" toml:"burst"`
	MaxDeliver         int           `yaml:"max_deliver" toml:"max_deliver"`
	AckWait            time.Duration `yaml:"ack_wait" toml:"ack_wait"`
	MaxAckPending      int           `yaml:"max_ack_pending" toml:"max_ack_pending"`
	MaxParked          int           `yaml:"max_parked" toml:"max_parked"`
	LatestOnly         *bool         `yaml:"latest_only" toml:"latest_only"`
	SendTimeout        time.Duration `yaml:"send_timeout" toml:"send_timeout"`
	Retry              retryConfig   `yaml:"retry" toml:"retry"`
	Breaker            breakerConfig `yaml:"breaker" toml:"breaker"`
}

type retryConfig struct {
	Schedule []time.Duration `yaml:"schedule" toml:"schedule"`
	Base     time.Duration   `yaml:"base" toml:"base"`
	Max      time.Duration   `yaml:"max" toml:"max"`
	Min      time.Duration   `yaml:"min" toml:"min"`
	Jitter   *float64        `yaml:"jitter" toml:"jitter"`
}

type breakerConfig struct {
	Threshold   int           `yaml:"threshold" toml:"threshold"`
	Cooldown    time.Duration `yaml:"cooldown" toml:"cooldown"`
	MaxCooldown time.Duration `yaml:"max_cooldown" toml:"max_cooldown"`
}

type webhookConfig struct {
	ConnectTimeout   time.Duration `yaml:"connect_timeout" toml:"connect_timeout"`
	Timeout          time.Duration `yaml:"timeout" toml:"timeout"`
	MaxResponseBytes int64         `yaml:"max_response_bytes" toml:"max_response_bytes"`
	// AllowHTTP accepts http:// webhook URLs (tests, private networks).
	AllowHTTP bool `yaml:"allow_http" toml:"allow_http"`
	// Allow lists address ranges webhooks may reach despite the SSRF
	// guard, e.g. ["127.0.0.1/32"]. Env HERALD_WEBHOOK_ALLOW (comma
	// separated).
	Allow []string `yaml:"allow" toml:"allow"`
	// PermanentStatuses are the HTTP statuses that refuse a webhook for
	// good (dead-lettered at once); every other non-2xx answer is
	// retried. Defaults to none.
	PermanentStatuses []int `yaml:"permanent_statuses" toml:"permanent_statuses"`
	// DisableAfter disables an endpoint whose every attempt failed for
	// that long, and emails its owner. Defaults to 120h (5 days);
	// negative: never.
	DisableAfter time.Duration `yaml:"disable_after" toml:"disable_after"`
	// IdleConnTimeout, MaxIdleConnsPerHost, MaxIdleConns and
	// TLSSessionCache tune the connections and TLS sessions kept per
	// host. Default 30s, per_destination (16), 1024, 1024.
	IdleConnTimeout     time.Duration `yaml:"idle_conn_timeout" toml:"idle_conn_timeout"`
	MaxIdleConnsPerHost int           `yaml:"max_idle_conns_per_host" toml:"max_idle_conns_per_host"`
	MaxIdleConns        int           `yaml:"max_idle_conns" toml:"max_idle_conns"`
	TLSSessionCache     int           `yaml:"tls_session_cache" toml:"tls_session_cache"`
	// DNS tunes the cache of DNS answers every outbound HTTP request
	// (webhooks, Slack, polled status pages) resolves through.
	DNS dnsConfig `yaml:"dns" toml:"dns"`
}

type dnsConfig struct {
	// Servers are the DNS servers asked ("ip" or "ip:port"). Defaults to
	// the nameservers of /etc/resolv.conf.
	Servers []string `yaml:"servers" toml:"servers"`
	// MinTTL and MaxTTL bound how long an answer is kept, whatever its
	// TTL. Default 5s and 5m.
	MinTTL time.Duration `yaml:"min_ttl" toml:"min_ttl"`
	MaxTTL time.Duration `yaml:"max_ttl" toml:"max_ttl"`
	// CacheSize bounds the names kept. Defaults to 4096.
	CacheSize int `yaml:"cache_size" toml:"cache_size"`
	// Timeout bounds one query to one server. Defaults to 2s.
	Timeout time.Duration `yaml:"timeout" toml:"timeout"`
}

// webhookEgress is the webhook channel's client configuration: that of
// egressConfig, with at least as many idle connections per host as the
// sends a host may have in flight (dispatch.channels.webhook.per_destination),
// unless webhook.max_idle_conns_per_host says otherwise (a bound only the
// net/http clients apply; see webhook.Config).
func (c *fileConfig) webhookEgress(allow []netip.Prefix) egress.Config {
	ec := c.egressConfig(allow)
	if ec.MaxIdleConnsPerHost == 0 {
		ec.MaxIdleConnsPerHost = max(16, c.Dispatch.Channels[channels.Webhook].PerDestination)
	}
	return ec
}

// egressConfig is the configuration of an SSRF-guarded client to the
// addresses allow opens, with the webhook section's timeouts, connection
// pool and DNS cache (the shared one, once serve made it).
func (c *fileConfig) egressConfig(allow []netip.Prefix) egress.Config {
	ec := c.Webhook.egressConfig(allow)
	ec.Resolver = c.resolver
	return ec
}

// egressConfig is the configuration of an SSRF-guarded client to the
// addresses allow opens, with the webhook section's timeouts, connection
// pool and DNS cache.
func (c webhookConfig) egressConfig(allow []netip.Prefix) egress.Config {
	return egress.Config{
		ConnectTimeout: c.ConnectTimeout, Timeout: c.Timeout, Allow: allow,
		IdleConnTimeout: c.IdleConnTimeout, MaxIdleConnsPerHost: c.MaxIdleConnsPerHost, MaxIdleConns: c.MaxIdleConns,
		TLSSessionCacheSize: c.TLSSessionCache,
		DNS:                 egress.DNSConfig{Servers: c.DNS.Servers, MinTTL: c.DNS.MinTTL, MaxTTL: c.DNS.MaxTTL, MaxEntries: c.DNS.CacheSize, Timeout: c.DNS.Timeout},
	}
}

// loadConfig reads the file (if any), then applies the environment.
func loadConfig(path string, env func(string) string) (*fileConfig, error) {
	cfg := &fileConfig{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".toml":
			md, err := toml.Decode(string(data), cfg)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if und := md.Undecoded(); len(und) > 0 {
				return nil, fmt.Errorf("%s: unknown key %s", path, und[0])
			}
		case ".yaml", ".yml", ".json":
			dec := yaml.NewDecoder(bytes.NewReader(data))
			dec.KnownFields(true)
			if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		default:
			return nil, fmt.Errorf("%s: unknown config format (use .yaml, .yml or .toml)", path)
		}
	}
	str := func(dst *string, key string) {
		if v := env(key); v != "" {
			*dst = v
		}
	}
	sec := func(dst *secret.Value, key string) {
		if v := env(key); v != "" {
			*dst = secret.Value(v)
		}
	}
	str(&cfg.Data, "HERALD_DATA")
	str(&cfg.Listen, "HERALD_LISTEN")
	str(&cfg.PublicListen, "HERALD_PUBLIC_LISTEN")
	str(&cfg.PublicURL, "HERALD_PUBLIC_URL")
	sec(&cfg.AdminToken, "HERALD_ADMIN_TOKEN")
	sec(&cfg.SecretKey, "HERALD_SECRET_KEY")
	sec(&cfg.PreviousSecretKey, "HERALD_PREVIOUS_SECRET_KEY")
	str(&cfg.Log.Format, "HERALD_LOG_FORMAT")
	str(&cfg.Log.Level, "HERALD_LOG_LEVEL")
	str(&cfg.NATS.URL, "HERALD_NATS_URL")
	str(&cfg.NATS.Creds, "HERALD_NATS_CREDS")
	sec(&cfg.NATS.Token, "HERALD_NATS_TOKEN")
	str(&cfg.NATS.User, "HERALD_NATS_USER")
	sec(&cfg.NATS.Password, "HERALD_NATS_PASSWORD")
	str(&cfg.Email.Host, "HERALD_SMTP_HOST")
	str(&cfg.Email.Username, "HERALD_SMTP_USERNAME")
	sec(&cfg.Email.Password, "HERALD_SMTP_PASSWORD")
	if v := env("HERALD_DKIM_KEY_FILE"); v != "" && cfg.Email.DKIM != nil {
		cfg.Email.DKIM.KeyFile = v
	}
	sec(&cfg.Slack.BotToken, "HERALD_SLACK_BOT_TOKEN")
	str(&cfg.Slack.APIURL, "HERALD_SLACK_API_URL")
	str(&cfg.SMS.AccountSID, "HERALD_TWILIO_ACCOUNT_SID")
	sec(&cfg.SMS.AuthToken, "HERALD_TWILIO_AUTH_TOKEN")
	str(&cfg.SMS.APIKey, "HERALD_TWILIO_API_KEY")
	sec(&cfg.SMS.APISecret, "HERALD_TWILIO_API_SECRET")
	if v := env("HERALD_MEMORY_LIMIT"); v != "" {
		limit, err := parseByteSize(v)
		if err != nil {
			return nil, fmt.Errorf("HERALD_MEMORY_LIMIT: %w", err)
		}
		cfg.MemoryLimit = limit
	}
	if v := env("HERALD_STRICT"); v != "" {
		strict, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("HERALD_STRICT=%q: use true or false", v)
		}
		cfg.Strict = strict
	}
	if err := cfg.RequireLocales.Validate(); err != nil {
		return nil, err
	}
	sec(&cfg.Ingest.Statuspage.Token, "HERALD_STATUSPAGE_TOKEN")
	str(&cfg.Ingest.Statuspage.URL, "HERALD_STATUSPAGE_URL")
	if v := env("HERALD_WEBHOOK_ALLOW"); v != "" {
		cfg.Webhook.Allow = strings.Split(v, ",")
	}
	if cfg.Data == "" {
		cfg.Data = "herald-data"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.PublicListen == "" {
		cfg.PublicListen = "127.0.0.1:8081"
	}
	return cfg, nil
}

// brokerConfig derives the NATS connection settings.
func (c *fileConfig) brokerConfig(logger *slog.Logger) broker.Config {
	return broker.Config{
		URL: c.NATS.URL, CredsFile: c.NATS.Creds, Token: c.NATS.Token,
		User: c.NATS.User, Password: c.NATS.Password,
		TLSCA: c.NATS.TLSCA, TLSCert: c.NATS.TLSCert, TLSKey: c.NATS.TLSKey,
		DataDir: c.Data, Listen: c.NATS.Listen, SyncAlways: c.NATS.SyncAlways,
		Logger: logger,
	}
}

// dispatcherConfig derives the dispatcher's settings.
func (c *fileConfig) dispatcherConfig() dispatcher.Config {
	d := dispatcher.Config{
		Replicas:             c.NATS.Replicas,
		DuplicateWindow:      c.Dispatch.DuplicateWindow,
		DeliveryLogRetention: c.Dispatch.DeliveryLogRetention,
		DeadLetterRetention:  c.Dispatch.DeadLetterRetention,
		SuppressionTTL:       c.Dispatch.SuppressionTTL,
		MaxEventBytes:        c.Dispatch.MaxEventBytes,
		UnratedPriority:      c.Dispatch.UnratedPriority,
		FanoutAckWait:        c.Dispatch.FanoutAckWait,
		FanoutMaxPending:     c.Dispatch.FanoutMaxPending,
		SubscriberCache:      c.Dispatch.SubscriberCache,
		BatchSize:            c.Dispatch.BatchSize,
		LeaseTTL:             c.Dispatch.LeaseTTL,
		ShutdownTimeout:      c.Dispatch.ShutdownTimeout,
		SecretKey:            c.SecretKey,
		PublicURL:            c.PublicURL,
		Channels:             map[string]dispatcher.ChannelConfig{},
		Maintenance:          dispatcher.MaintenanceConfig{Reminders: c.Maintenance.Reminders},
	}
	for name, cc := range c.Dispatch.Channels {
		d.Channels[name] = dispatcher.ChannelConfig{
			Concurrency: cc.Concurrency, PerDestination: cc.PerDestination, Pace: cc.Pace, MaxDestinationWait: cc.MaxDestinationWait,
			Rate: cc.Rate, Burst: cc.Burst,
			MaxDeliver: cc.MaxDeliver, AckWait: cc.AckWait, MaxAckPending: cc.MaxAckPending, MaxParked: cc.MaxParked,
			LatestOnly: cc.LatestOnly, SendTimeout: cc.SendTimeout,
			Retry:   dispatcher.Backoff{Schedule: cc.Retry.Schedule, Base: cc.Retry.Base, Max: cc.Retry.Max, Min: cc.Retry.Min, Jitter: cc.Retry.Jitter},
			Breaker: dispatcher.BreakerConfig{Threshold: cc.Breaker.Threshold, Cooldown: cc.Breaker.Cooldown, MaxCooldown: cc.Breaker.MaxCooldown},
		}
	}
	// A live provider's rate (email.rate, sms.rate) is the channel's rate
	// limit, applied once, by the delivery loop (which hands a job back
	// rather than wait inside a send), unless dispatch sets one itself.
	for name, r := range map[string]float64{channels.Email: c.emailRate(), channels.SMS: c.smsRate()} {
		if cc := d.Channels[name]; r > 0 && cc.Rate == 0 {
			cc.Rate = r
			d.Channels[name] = cc
		}
	}
	// webhook.disable_after is the webhook channel's.
	if cc := d.Channels[channels.Webhook]; c.Webhook.DisableAfter != 0 {
		cc.DisableAfter = c.Webhook.DisableAfter
		d.Channels[channels.Webhook] = cc
	}
	// slack.per_channel_interval is the Slack channel's pace in the
	// delivery loop too (jobs wait for it without holding a send slot),
	// unless dispatch sets one itself.
	if cc := d.Channels[channels.Slack]; c.Slack.PerChannelInterval != 0 && cc.Pace == 0 {
		cc.Pace = c.Slack.PerChannelInterval
		d.Channels[channels.Slack] = cc
	}
	return d
}

// emailRate is the live SMTP provider's rate limit (0: none).
func (c *fileConfig) emailRate() float64 {
	if c.Email.Host == "" {
		return 0
	}
	return c.Email.Rate
}

// smsRate is the live Twilio provider's rate limit.
func (c *fileConfig) smsRate() float64 {
	switch {
	case c.SMS.AccountSID == "":
		return 0
	case c.SMS.Rate == 0:
		return sms.DefaultRate
	}
	return c.SMS.Rate
}

// catalog builds the component catalog.
func (c *fileConfig) catalog() (*incident.Catalog, error) {
	comps := c.Components
	if len(comps) == 0 {
		comps = incident.DefaultComponents()
	}
	return incident.NewCatalog(comps)
}

// subscriberRules are the validation rules of subscribers written through
// the API or the CLI: the catalog's components, and every address checked
// by the code of the channel that will send to it (webhook URLs against the
// SSRF policy webhooks are sent under), so that nothing accepted here is
// refused at send time.
func (c *fileConfig) subscriberRules(catalog *incident.Catalog, allow []netip.Prefix) subscribers.Rules {
	policy := egress.Policy{Allow: allow}
	allowHTTP := c.Webhook.AllowHTTP
	return subscribers.Rules{
		Components: catalog, AllowHTTPWebhooks: allowHTTP,
		WebhookURL: func(raw string) error {
			_, err := policy.CheckURL(raw, allowHTTP)
			return err
		},
		Phone:        sms.Normalize,
		SlackChannel: slack.IsChannelID,
		SlackWebhook: func(raw string) error { // as newSlack builds the channel
			return slack.CheckWebhookURL(raw, c.Slack.WebhookHosts, c.Webhook.AllowHTTP)
		},
		WebhookSecret: webhook.CheckSecret,
		Unavailable:   c.unavailableChannels(),
		SMSCountries:  c.SMS.Countries,
	}
}

// webhookAllow parses the allow-list.
func (c *fileConfig) webhookAllow() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.Webhook.Allow {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("webhook allow %q: %w", s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}

// persistedSecret returns v, or the secret kept in <data>/<name>, creating
// it (random, 32 bytes hex) on first use.
func persistedSecret(v secret.Value, dataDir, name string) (secret.Value, string, error) {
	if !v.IsZero() {
		return v, "", nil
	}
	path := filepath.Join(dataDir, name)
	if data, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(data)); s != "" {
			return secret.Value(s), path, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", err
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", "", err
	}
	s := hex.EncodeToString(buf)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return secret.Value(s), path, nil
}

// newLogger builds the process logger.
func newLogger(c logConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(orDefault(c.Level, "info"))); err != nil {
		return nil, fmt.Errorf("log level %q: %w", c.Level, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch orDefault(c.Format, "text") {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", c.Format)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// emailDKIM loads the DKIM key email.dkim names (nil without DKIM).
func (c *fileConfig) emailDKIM() (*email.DKIM, error) {
	d := c.Email.DKIM
	if d == nil {
		return nil, nil
	}
	key, err := os.ReadFile(d.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("email: dkim key: %w", err)
	}
	return &email.DKIM{Domain: d.Domain, Selector: d.Selector, PrivateKey: secret.Value(key)}, nil
}

// emailRenderer renders emails as the email channel configured here
// submits them (Reply-To, List-Id, DKIM), from from: for the outbox and
// previews.
func (c *fileConfig) emailRenderer(dkim *email.DKIM, from string) (*email.Renderer, error) {
	r, err := email.NewRenderer(email.Config{From: from, ReplyTo: c.Email.ReplyTo, ListID: c.Email.ListID, DKIM: dkim})
	if err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	return r, nil
}

// renderer builds the templates as serve renders messages.
func (c *fileConfig) renderer(catalog *incident.Catalog, logger *slog.Logger) (*templates.Renderer, error) {
	r, err := templates.New(templates.Config{
		Dir: c.Templates.Dir, Components: catalog, Fallback: c.Templates.Fallback,
		SMSSegments: c.Templates.SMSSegments, PublicURL: c.PublicURL, Logger: logger,
		ListID: c.Email.ListID, UnsubscribeMailto: c.Email.UnsubscribeMailto, CalendarOrganizer: c.Email.From,
	})
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	return r, nil
}

// slackConfig is the live Slack channel's configuration: bot mode with the
// configured token against the configured Web API (Slack's, GovSlack's, a
// local Slack-shaped server), incoming webhooks on the configured hosts
// through client (SSRF-guarded), threads kept in threads.
func (c *fileConfig) slackConfig(client *http.Client, threads slack.ThreadStore, logger *slog.Logger) slack.Config {
	return slack.Config{
		BotToken: c.Slack.BotToken, APIURL: c.Slack.APIURL, WebhookHosts: c.Slack.WebhookHosts,
		AllowHTTP: c.Webhook.AllowHTTP, HTTPClient: client,
		// slack.per_channel_interval is the delivery loop's pace (see
		// dispatcherConfig): applied once, by the loop, which holds no
		// send slot while a job waits for its turn.
		PerChannelInterval: -1,
		Threads:            threads, Logger: logger,
	}
}
