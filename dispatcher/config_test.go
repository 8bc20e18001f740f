package dispatcher

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/secret"
)

// TestConfigValidate: each invalid setting is refused with a message that
// names it; the defaults are valid.
func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{SecretKey: secret.Value(strings.Repeat("k", 32))}
	}
	if err := valid().WithDefaults().validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		change     func(*Config)
	}{
		{"replicas", "replicas must be 1, 3 or 5", func(c *Config) { c.Replicas = 2 }},
		{"secret", "secret key must be at least 32 bytes", func(c *Config) { c.SecretKey = "short" }},
		{"public URL", "public URL", func(c *Config) { c.PublicURL = "ftp://x" }},
		{"event size", "max event bytes", func(c *Config) { c.MaxEventBytes = 5 << 20 }},
		{"unknown channel", `unknown channel "fax"`, func(c *Config) { c.Channels = map[string]ChannelConfig{"fax": {}} }},
		{"negative rate", "rate must not be negative", func(c *Config) {
			c.Channels = map[string]ChannelConfig{channels.Email: {Rate: -1}}
		}},
		{"ack wait vs duplicate window", "ack wait (2m0s) must be shorter than the duplicate window (2m0s)", func(c *Config) {
			c.DuplicateWindow = 2 * time.Minute
			c.Channels = map[string]ChannelConfig{channels.Webhook: {AckWait: 2 * time.Minute}}
		}},
		{"ack wait vs lease", "ack wait (1m0s) must not exceed the lease TTL (30s)", func(c *Config) {
			c.Channels = map[string]ChannelConfig{channels.Webhook: {AckWait: time.Minute}}
		}},
		{"batch size", "batch size must be at most 4096", func(c *Config) { c.BatchSize = 5000 }},
		{"breaker", "breaker max cooldown must be at least the cooldown", func(c *Config) {
			c.Channels = map[string]ChannelConfig{channels.Slack: {Breaker: BreakerConfig{Cooldown: time.Hour, MaxCooldown: time.Minute}}}
		}},
	} {
		c := valid()
		tc.change(&c)
		err := c.WithDefaults().validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
