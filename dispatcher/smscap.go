package dispatcher

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/quota"
)

// Capped: the daily SMS cap of the subscriber or of the platform was
// reached; the SMS was not sent.
const Capped Outcome = "capped"

// SMSCapConfig configures the daily SMS caps.
type SMSCapConfig struct {
	// PerSubscriber is the most SMS one subscriber receives per UTC day;
	// P1 notifications do not count against it and are not stopped by
	// it. Defaults to 20; negative means no cap.
	PerSubscriber int64
	// Platform is the most SMS sent per UTC day over the whole platform,
	// P1 included. Defaults to 50 000; negative means no cap.
	Platform int64
	// Bucket is the KV bucket of the counts. Defaults to "sms_caps".
	Bucket string
	// Replicas of the bucket. Defaults to 1.
	Replicas int
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger receives a line when a cap is reached. Defaults to none.
	Logger *slog.Logger
	// Registerer receives herald_sms_capped_total. Defaults to none.
	Registerer prometheus.Registerer
}

// WithDefaults returns c with every unset field at its default.
func (c SMSCapConfig) WithDefaults() SMSCapConfig {
	if c.PerSubscriber == 0 {
		c.PerSubscriber = 20
	}
	if c.Platform == 0 {
		c.Platform = 50_000
	}
	if c.Bucket == "" {
		c.Bucket = "sms_caps"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// SMSCap enforces the daily SMS caps, per subscriber and for the platform,
// with counts in a KV bucket shared by every process. SMS pumping (a
// sign-up form abused to text premium ranges) and runaway loops cost money
// by the message: the caps bound both.
type SMSCap struct {
	cfg    SMSCapConfig
	counts *quota.Counter
	capped *prometheus.CounterVec
}

// Cap scopes, the label of herald_sms_capped_total and the reason of a
// capped record.
const (
	CapSubscriber = "subscriber"
	CapPlatform   = "platform"
)

// NewSMSCap opens the caps' bucket.
func NewSMSCap(ctx context.Context, js jetstream.JetStream, cfg SMSCapConfig) (*SMSCap, error) {
	cfg = cfg.WithDefaults()
	counts, err := quota.Open(ctx, js, quota.Config{Bucket: cfg.Bucket, Replicas: cfg.Replicas, MaxAge: 48 * time.Hour})
	if err != nil {
		return nil, err
	}
	c := &SMSCap{cfg: cfg, counts: counts, capped: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_sms_capped_total",
		Help: "SMS not sent because a daily cap was reached, by cap (subscriber or platform).",
	}, []string{"scope"})}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(c.capped); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			c.capped = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return c, nil
}

func (c *SMSCap) keys(subscriberID string) (sub, platform string) {
	day := quota.Window(c.cfg.Now(), 24*time.Hour)
	return quota.Key("sub", subscriberID, day), quota.Key("platform", day)
}

// Take counts one SMS to the subscriber at the given priority, unless a cap
// forbids it; it then returns the scope of that cap (CapSubscriber or
// CapPlatform), else "".
func (c *SMSCap) Take(ctx context.Context, subscriberID string, prio incident.Priority) (string, error) {
	subKey, platformKey := c.keys(subscriberID)
	if prio != incident.P1 && c.cfg.PerSubscriber > 0 {
		n, ok, err := c.counts.Take(ctx, subKey, c.cfg.PerSubscriber)
		if err != nil {
			return "", err
		}
		if !ok {
			return c.refuse(CapSubscriber, "subscriber", subscriberID), nil
		}
		if n == c.cfg.PerSubscriber {
			c.cfg.Logger.Warn("daily SMS cap of a subscriber reached", "subscriber", subscriberID, "cap", n)
		}
	}
	if c.cfg.Platform > 0 {
		n, ok, err := c.counts.Take(ctx, platformKey, c.cfg.Platform)
		if err != nil {
			return "", err
		}
		if !ok {
			return c.refuse(CapPlatform), nil
		}
		if n == c.cfg.Platform {
			c.cfg.Logger.Warn("daily SMS cap of the platform reached", "cap", n)
		}
	}
	return "", nil
}

func (c *SMSCap) refuse(scope string, args ...any) string {
	c.capped.WithLabelValues(scope).Inc()
	c.cfg.Logger.Info("SMS not sent: daily cap reached", append([]any{"cap", scope}, args...)...)
	return scope
}

// Check reports, without counting, the cap that would stop one more SMS to
// the subscriber (non-P1), or "": the public pages ask before they promise
// a confirmation code.
func (c *SMSCap) Check(ctx context.Context, subscriberID string) (string, error) {
	subKey, platformKey := c.keys(subscriberID)
	if c.cfg.Platform > 0 {
		n, err := c.counts.Count(ctx, platformKey)
		if err != nil {
			return "", err
		}
		if n >= c.cfg.Platform {
			return CapPlatform, nil
		}
	}
	if c.cfg.PerSubscriber > 0 && subscriberID != "" {
		n, err := c.counts.Count(ctx, subKey)
		if err != nil {
			return "", err
		}
		if n >= c.cfg.PerSubscriber {
			return CapSubscriber, nil
		}
	}
	return "", nil
}

// capSMS is the stage that applies the daily SMS caps to an SMS about to
// be rendered and sent: one over its cap is skipped and recorded as Capped;
// counts that cannot be read are Herald's trouble (retried, no attempt).
func (t *task) capSMS() bool {
	d := t.dl.d
	t.next = (*task).render
	if d.smsCap == nil || t.m.job.Channel != channels.SMS {
		return true
	}
	scope, err := d.smsCap.Take(t.dl.sendCtx, t.target.SubscriberID, t.m.job.Priority)
	if err != nil {
		t.next = (*task).capSMS
		return t.retryInfra(componentSMSCaps, err)
	}
	if scope != "" {
		t.skip(Capped, "daily SMS cap of the "+scope+" reached")
		return false
	}
	return true
}
