package dispatcher

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
)

// Config tunes the dispatcher. The zero value, after [Config.WithDefaults],
// runs a single-node Herald; SecretKey is the only field without a default.
type Config struct {
	// Replicas of every stream and bucket: 1 for a single server, 3 on a
	// JetStream cluster. Defaults to 1.
	Replicas int
	// DuplicateWindow is the INCIDENTS and DELIVERIES streams' Nats-Msg-Id
	// dedupe window: a batch or parked job published again inside it (a
	// fan-out resumed after a crash, a park whose ack was lost) is dropped
	// by the server. The server keeps each id of the window in memory
	// (about 100 bytes), and batches keep ids few. Defaults to 6 hours.
	DuplicateWindow time.Duration
	// BatchSize is the number of targets the fan-out puts in one job of
	// an update and channel (a batch). Defaults to 256.
	BatchSize int
	// LeaseTTL is how long a lease on a delivery lives when its holder
	// neither gives it back nor renews it (its process died): a copy of
	// the delivery waits that long at most. The holder renews its leases
	// every third of the ack wait, so it must be at least the ack wait.
	// Defaults to 30 s.
	LeaseTTL time.Duration
	// IncidentRetention is how long updates stay in INCIDENTS (jobs read
	// their update from there). Defaults to 400 days.
	IncidentRetention time.Duration
	// DeliveryLogRetention is how long DELIVERY_LOG keeps records (and
	// so how long a delivered id is remembered). Defaults to 30 days.
	DeliveryLogRetention time.Duration
	// DeadLetterRetention is how long DEAD_LETTERS keeps entries.
	// Defaults to 90 days.
	DeadLetterRetention time.Duration
	// SuppressionTTL is how long a suppressed address stays suppressed.
	// Defaults to 30 days.
	SuppressionTTL time.Duration
	// MaxEventBytes limits one encoded event. Defaults to 256 KiB.
	MaxEventBytes int
	// UnratedPriority is the priority assumed, for matching, for updates
	// that carry none. Defaults to P3.
	UnratedPriority incident.Priority
	// FanoutAckWait is the fan-out consumer's ack wait; long fan-outs
	// send progress before it expires. Defaults to 30 s.
	FanoutAckWait time.Duration
	// FanoutMaxPending bounds the batch publishes awaiting their ack
	// during a fan-out (so the memory a fan-out holds while DELIVERIES is
	// slow or refusing). Defaults to 64.
	FanoutMaxPending int
	// SubscriberCache is how many subscribers the delivery loops keep
	// decoded (about 460 B each), so that sends need not read and decode
	// them again: an audience within it costs no lookups. Defaults to
	// 65 536 (about 30 MB when full).
	SubscriberCache int
	// Channels tunes each channel's delivery loop, by channel name.
	// Missing channels get [DefaultChannelConfig].
	Channels map[string]ChannelConfig
	// Maintenance tunes the reminders of scheduled maintenance (see
	// [MaintenanceConfig] for the defaults).
	Maintenance MaintenanceConfig
	// ShutdownTimeout bounds how long in-flight sends may finish after a
	// stop was asked. Defaults to 20 s.
	ShutdownTimeout time.Duration
	// SecretKey seals unsubscribe tokens. Required, at least 32 bytes.
	SecretKey secret.Value
	// PublicURL is the base URL of Herald's public endpoints
	// (unsubscribe links). Defaults to "http://localhost:8080".
	PublicURL string

	// Logger receives the dispatcher's logs. Defaults to discarding them.
	Logger *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Rand returns a uniform number in [0, 1) for jitter. Defaults to
	// math/rand/v2's Float64.
	Rand func() float64
	// Registerer receives the Prometheus metrics. Defaults to none.
	Registerer prometheus.Registerer
}

// ChannelConfig tunes one channel's delivery loop.
type ChannelConfig struct {
	// Concurrency bounds the targets this process works on at once: sends
	// in flight, and the targets being prepared for one (lease, log check,
	// render). Targets waiting for their destination's turn, a pace or a
	// retry of Herald's own infrastructure hold no slot. Defaults to 1024
	// for webhooks, 16 for the other channels.
	Concurrency int
	// PerDestination bounds the sends in flight to one destination (a
	// webhook host, a Slack channel or incoming webhook, a provider).
	// Defaults to 1 for Slack, 16 for the other channels.
	PerDestination int
	// Pace is the least time between the starts of two sends to one
	// destination, over every Herald process sharing the cluster (the
	// next free turn is kept in the pacing bucket). A target waits for its
	// turn without holding a send slot. Defaults to 1 s for Slack (Slack's
	// one message per second per channel), none for the other channels;
	// negative means none.
	Pace time.Duration
	// MaxDestinationWait is the longest a job waits in the process for
	// its destination's turn (its pace, or a free slot when the sends
	// ahead of it would take longer, judged from the destination's recent
	// send durations). A job that would wait longer is deferred by about
	// its wait, so that a busy or slow destination cannot hold the jobs
	// of the others. Defaults to 10 s for webhooks and Slack (many
	// destinations), no bound for email and SMS: their one destination is
	// the provider, so a deferred job would let no other through, and each
	// target deferred becomes a job of its own (with 4 096 emails of a
	// large update in hand for one SMTP relay, deferring those at the back
	// of its queue once sends slowed down made Herald 0.23–0.50 of a raw
	// SMTP loop, against 0.94–1.04 waiting in turn). Negative means no
	// bound.
	MaxDestinationWait time.Duration
	// Rate limits sends per second over the whole channel and every
	// Herald process sharing the cluster (the provider's rate: SMTP relay,
	// Twilio); 0 means no limit. Defaults to 0.
	Rate float64
	// Burst is how many sends a process reserves at once from the global
	// rate (each reservation is one write to the pacing bucket). Defaults
	// to a fifth of a second's worth, at least 1.
	Burst int
	// MaxDeliver bounds attempts of one job, deferrals included.
	// Defaults to 25.
	MaxDeliver int
	// AckWait is how long a job may stay unacknowledged before
	// JetStream redelivers it; slow sends report progress before it
	// expires. Defaults to 30 s.
	AckWait time.Duration
	// MaxAckPending bounds the jobs (batches and single jobs) of the
	// delivery consumer held by this process and its peers at once.
	// Defaults to enough batches to keep Concurrency busy four times over
	// (4 × Concurrency / BatchSize), at least 16. Jobs waiting for a retry
	// or a deferral are not held: they are parked (see MaxParked).
	MaxAckPending int
	// MaxParked bounds the parked jobs (waiting for a retry or a
	// deferral) the server tracks at once, over all processes; beyond it,
	// jobs parked later stay stored and come back only as earlier ones
	// leave, later than due. Defaults to 1 000 000 (the server keeps
	// about a hundred bytes per parked job).
	MaxParked int
	// Retry is the retry schedule. Defaults to [DefaultBackoff].
	Retry Backoff
	// LatestOnly skips a job when a newer update of the same incident has
	// been fanned out before it was sent. Defaults to true for SMS.
	LatestOnly *bool
	// SendTimeout bounds one send, whatever the channel's own timeouts.
	// Defaults to 60 s.
	SendTimeout time.Duration
	// Breaker trips on a destination's consecutive transient failures.
	Breaker BreakerConfig
	// DisableAfter disables an endpoint whose every attempt failed for
	// that long (from its first failed attempt after its last success),
	// and tells its owner, as webhook platforms do; the failure that
	// reaches it is recorded with the disable_endpoint action. Defaults
	// to 5 days for webhooks (Svix's), never for the other channels;
	// negative means never.
	DisableAfter time.Duration
}

// BreakerConfig tunes the per-destination circuit breaker.
type BreakerConfig struct {
	// Threshold is the number of consecutive transient failures that
	// opens the circuit. Defaults to 5; negative disables the breaker.
	Threshold int
	// Cooldown is the first open period; it doubles on each failed probe.
	// Defaults to 30 s.
	Cooldown time.Duration
	// MaxCooldown caps the open period. Defaults to 10 minutes.
	MaxCooldown time.Duration
}

// DefaultChannelConfig returns the defaults of the named channel, with the
// default batch size.
func DefaultChannelConfig(name string) ChannelConfig {
	return ChannelConfig{}.withDefaults(name, defaultBatchSize)
}

// defaultBatchSize is Config.BatchSize's default.
const defaultBatchSize = 256

func (c ChannelConfig) withDefaults(name string, batchSize int) ChannelConfig {
	if c.Concurrency <= 0 {
		c.Concurrency = 16
		if name == channels.Webhook {
			c.Concurrency = 1024
		}
	}
	if c.PerDestination <= 0 {
		c.PerDestination = 16
		if name == channels.Slack {
			c.PerDestination = 1
		}
	}
	if c.Pace == 0 && name == channels.Slack {
		c.Pace = time.Second
	}
	if c.MaxDestinationWait == 0 {
		c.MaxDestinationWait = 10 * time.Second
		if name == channels.Email || name == channels.SMS {
			c.MaxDestinationWait = -1
		}
	}
	if c.Burst <= 0 {
		c.Burst = max(1, int(c.Rate/5))
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 25
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = max(16, (4*c.Concurrency+batchSize-1)/batchSize)
	}
	if c.MaxParked <= 0 {
		c.MaxParked = 1_000_000
	}
	c.Retry = c.Retry.WithDefaults()
	if c.LatestOnly == nil {
		v := name == channels.SMS
		c.LatestOnly = &v
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 60 * time.Second
	}
	if c.Breaker.Threshold == 0 {
		c.Breaker.Threshold = 5
	}
	if c.Breaker.Cooldown <= 0 {
		c.Breaker.Cooldown = 30 * time.Second
	}
	if c.Breaker.MaxCooldown <= 0 {
		c.Breaker.MaxCooldown = 10 * time.Minute
	}
	if c.DisableAfter == 0 && name == channels.Webhook {
		c.DisableAfter = 5 * 24 * time.Hour
	}
	return c
}

func (c ChannelConfig) validate(name string) error {
	switch {
	case c.Rate < 0:
		return fmt.Errorf("channel %s: rate must not be negative", name)
	case c.MaxAckPending < 1:
		return fmt.Errorf("channel %s: max ack pending must be at least 1", name)
	case c.AckWait < time.Second:
		return fmt.Errorf("channel %s: ack wait must be at least 1s", name)
	case c.Breaker.MaxCooldown < c.Breaker.Cooldown:
		return fmt.Errorf("channel %s: breaker max cooldown must be at least the cooldown", name)
	}
	return c.Retry.validate()
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 6 * time.Hour
	}
	if c.BatchSize <= 0 {
		c.BatchSize = defaultBatchSize
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.IncidentRetention <= 0 {
		c.IncidentRetention = 400 * 24 * time.Hour
	}
	if c.DeliveryLogRetention <= 0 {
		c.DeliveryLogRetention = 30 * 24 * time.Hour
	}
	if c.DeadLetterRetention <= 0 {
		c.DeadLetterRetention = 90 * 24 * time.Hour
	}
	if c.SuppressionTTL <= 0 {
		c.SuppressionTTL = 30 * 24 * time.Hour
	}
	if c.MaxEventBytes <= 0 {
		c.MaxEventBytes = incident.DefaultMaxBytes
	}
	if c.UnratedPriority == "" {
		c.UnratedPriority = incident.P3
	}
	if c.FanoutAckWait <= 0 {
		c.FanoutAckWait = 30 * time.Second
	}
	if c.FanoutMaxPending <= 0 {
		c.FanoutMaxPending = 64
	}
	if c.SubscriberCache <= 0 {
		c.SubscriberCache = subscribers.DefaultCacheSize
	}
	chs := make(map[string]ChannelConfig, len(channels.Names()))
	for _, name := range channels.Names() {
		chs[name] = c.Channels[name].withDefaults(name, c.BatchSize)
	}
	for name, cc := range c.Channels {
		if _, ok := chs[name]; !ok {
			chs[name] = cc // unknown: kept so that validate reports it
		}
	}
	c.Channels = chs
	c.Maintenance = c.Maintenance.WithDefaults()
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://localhost:8080"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("replicas must be 1, 3 or 5, not %d", c.Replicas))
	}
	if !c.UnratedPriority.Valid() {
		errs = append(errs, fmt.Errorf("unrated priority must be P1..P4, not %q", c.UnratedPriority))
	}
	if len(c.SecretKey.Reveal()) < 32 {
		errs = append(errs, errors.New("secret key must be at least 32 bytes"))
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("public URL %q must be an absolute http(s) URL", c.PublicURL))
	}
	if c.BatchSize > 4096 {
		errs = append(errs, errors.New("batch size must be at most 4096 (a job must fit in a NATS message)"))
	}
	if c.MaxEventBytes > 4<<20 {
		errs = append(errs, errors.New("max event bytes must be at most 4 MiB"))
	}
	known := map[string]bool{}
	for _, n := range channels.Names() {
		known[n] = true
	}
	for name, cc := range c.Channels {
		if !known[name] {
			errs = append(errs, fmt.Errorf("unknown channel %q", name))
			continue
		}
		if err := cc.validate(name); err != nil {
			errs = append(errs, err)
		}
		if cc.AckWait > c.LeaseTTL {
			errs = append(errs, fmt.Errorf("channel %s: ack wait (%s) must not exceed the lease TTL (%s)", name, cc.AckWait, c.LeaseTTL))
		}
		if cc.AckWait >= c.DuplicateWindow {
			// A job whose ack was lost after it was parked comes back
			// after the ack wait and is parked again under the same
			// Nats-Msg-Id: the stream must still remember the first copy.
			errs = append(errs, fmt.Errorf("channel %s: ack wait (%s) must be shorter than the duplicate window (%s)", name, cc.AckWait, c.DuplicateWindow))
		}
	}
	if err := c.Maintenance.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dispatcher config: %w", err)
	}
	return nil
}
