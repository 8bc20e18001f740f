package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/subscribers"
)

// providers reports, per channel, whether the configuration gives it a
// provider (else its messages go to the outbox). Webhooks need none.
func (c *fileConfig) providers() map[string]bool {
	return map[string]bool{
		channels.Webhook: true,
		channels.Email:   c.Email.Host != "",
		channels.SMS:     c.SMS.AccountSID != "",
		channels.Slack:   c.Slack.live(),
	}
}

// providerHint says what configures a channel's provider.
var providerHint = map[string]string{
	channels.Email: "email.host (HERALD_SMTP_HOST)",
	channels.SMS:   "sms.account_sid (HERALD_TWILIO_ACCOUNT_SID)",
	channels.Slack: "slack.bot_token (HERALD_SLACK_BOT_TOKEN) or slack.live",
}

// unavailableChannels returns, in strict mode, the channels without a
// provider with the reason subscribers' endpoints on them are refused;
// nil otherwise.
func (c *fileConfig) unavailableChannels() map[string]string {
	if !c.Strict {
		return nil
	}
	out := map[string]string{}
	for name, live := range c.providers() {
		if !live {
			out[name] = fmt.Sprintf("channel %s has no provider and strict mode is on (configure %s)", name, providerHint[name])
		}
	}
	return out
}

// StrictError refuses to start in strict mode: channels that subscribers'
// endpoints use have no provider.
type StrictError struct {
	// Endpoints counts the active endpoints of each such channel.
	Endpoints map[string]int
}

// Error names each channel, its endpoints and what configures it.
func (e *StrictError) Error() string {
	names := make([]string, 0, len(e.Endpoints))
	for name := range e.Endpoints {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s has %d endpoints and no provider (configure %s)", name, e.Endpoints[name], providerHint[name])
	}
	return "strict mode: " + strings.Join(parts, "; ") + "; their messages would only reach the outbox"
}

// checkStrict refuses, in strict mode, a start where a channel that
// subscribers' endpoints use has no provider.
func checkStrict(ctx context.Context, cfg *fileConfig, kv jetstream.KeyValue, logger *slog.Logger) error {
	if !cfg.Strict {
		return nil
	}
	missing := slices.Sorted(maps.Keys(cfg.unavailableChannels()))
	if len(missing) == 0 {
		return nil
	}
	ix, err := subscribers.Load(ctx, kv, logger)
	if err != nil {
		return err
	}
	counts := ix.Endpoints()
	refused := map[string]int{}
	for _, name := range missing {
		if n := counts[name]; n > 0 {
			refused[name] = n
		}
	}
	if len(refused) > 0 {
		return &StrictError{Endpoints: refused}
	}
	logger.Info("strict mode: channels without a provider have no endpoints, and new ones are refused", "channels", strings.Join(missing, ","))
	return nil
}

// startupWarnings logs what an operator should fix before going live: a
// public URL on loopback (the links in messages reach no subscriber), an
// admin token generated into the data directory, a live email relay
// without DKIM.
func startupWarnings(cfg *fileConfig, tokenFile string, logger *slog.Logger) {
	if loopbackURL(cfg.PublicURL) {
		logger.Warn("the public URL points to this machine: unsubscribe links and provider callbacks will not reach it from outside (set public_url / HERALD_PUBLIC_URL)", "public_url", cfg.PublicURL)
	}
	if tokenFile != "" {
		logger.Warn("admin token generated into the data directory: anyone who reads the directory holds the API (set admin_token / HERALD_ADMIN_TOKEN)", "file", tokenFile)
	}
	if cfg.Email.Host != "" && cfg.Email.DKIM == nil {
		logger.Warn("email is sent through a relay without DKIM: Gmail and Yahoo require aligned DKIM from bulk senders (configure email.dkim)", "relay", cfg.Email.Host)
	}
}

// loopbackURL reports whether u's host is a loopback name or address (or
// unspecified, which a listener serves on loopback too).
func loopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := strings.TrimSuffix(strings.ToLower(p.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || host == "" {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return a.Unmap().IsLoopback() || a.IsUnspecified()
}
