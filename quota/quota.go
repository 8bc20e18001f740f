package quota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a [Counter]'s bucket.
type Config struct {
	// Bucket is the KV bucket's name. Required.
	Bucket string
	// Replicas of the bucket: 1, or 3 on a cluster. Defaults to 1.
	Replicas int
	// MaxAge is how long a window's count is kept: at least the longest
	// window counted in the bucket. Defaults to 48 hours.
	MaxAge time.Duration
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 48 * time.Hour
	}
	return c
}

func (c Config) validate() error {
	if c.Bucket == "" {
		return errors.New("quota: a bucket name is required")
	}
	return nil
}

// Counter counts in a KV bucket. It is safe for concurrent use, in one
// process and across processes.
type Counter struct {
	kv jetstream.KeyValue
}

// Open creates (or updates) the bucket and returns its counter.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Counter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, Description: "Herald counters per time window",
		History: 1, TTL: cfg.MaxAge, Replicas: cfg.Replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("quota bucket %s: %w", cfg.Bucket, err)
	}
	return &Counter{kv: kv}, nil
}

// casAttempts bounds the compare-and-set retries of one increment.
const casAttempts = 32

// Take adds one to key's count unless the count already reached limit
// (limit <= 0: no limit). It returns the count after the call and whether
// the one was added.
func (c *Counter) Take(ctx context.Context, key string, limit int64) (int64, bool, error) {
	for range casAttempts {
		e, err := c.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := c.kv.Create(ctx, key, []byte("1")); err == nil {
				return 1, true, nil
			} else if !conflict(err) {
				return 0, false, fmt.Errorf("quota %s: %w", key, err)
			}
			continue
		case err != nil:
			return 0, false, fmt.Errorf("quota %s: %w", key, err)
		}
		n, _ := strconv.ParseInt(string(e.Value()), 10, 64)
		if limit > 0 && n >= limit {
			return n, false, nil
		}
		if _, err := c.kv.Update(ctx, key, []byte(strconv.FormatInt(n+1, 10)), e.Revision()); err == nil {
			return n + 1, true, nil
		} else if !conflict(err) {
			return 0, false, fmt.Errorf("quota %s: %w", key, err)
		}
	}
	return 0, false, fmt.Errorf("quota %s: too many concurrent updates", key)
}

// Count returns key's count (0 when there is none).
func (c *Counter) Count(ctx context.Context, key string) (int64, error) {
	e, err := c.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("quota %s: %w", key, err)
	}
	n, _ := strconv.ParseInt(string(e.Value()), 10, 64)
	return n, nil
}

func conflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Window returns the name of the window of length d holding t: the
// window's start in Unix seconds ("1777852800"), or for whole days the UTC
// date ("20260504").
func Window(t time.Time, d time.Duration) string {
	if d == 24*time.Hour {
		return t.UTC().Format("20060102")
	}
	secs := int64(d / time.Second)
	if secs <= 0 {
		secs = 1
	}
	return strconv.FormatInt(t.Unix()/secs*secs, 10)
}

// Key joins parts into a key, each part reduced to the characters KV keys
// allow; a part holding others (an address, an IP) is replaced by a
// digest, so that no address is stored either.
func Key(parts ...string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		if plain(p) {
			out[i] = p
			continue
		}
		sum := sha256.Sum256([]byte(p))
		out[i] = "h" + hex.EncodeToString(sum[:12])
	}
	return strings.Join(out, ".")
}

// plain reports whether s can be one token of a key as it is.
func plain(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
