package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Suppression is an address Herald must not use for a while: a hard bounce,
// an SMS STOP, an operator's decision. It expires with the bucket's TTL.
type Suppression struct {
	// Channel is "email" or "sms".
	Channel string `json:"channel"`
	// Address is the suppressed address, as normalised at send time.
	Address string `json:"address"`
	// Reason says why (SMTP 5.1.1 …, Twilio 21610 …).
	Reason string `json:"reason"`
	// At is when it was added; it expires after the configured TTL.
	At time.Time `json:"at"`
}

// Suppressions manages the "suppressions" KV bucket and mirrors it in memory
// so that the delivery loop checks an address without a round trip.
type Suppressions struct {
	kv     jetstream.KeyValue
	ttl    time.Duration
	now    func() time.Time
	logger *slog.Logger

	mu    sync.RWMutex
	keys  map[string]time.Time // key → when it was added
	ready chan struct{}
}

// NewSuppressions opens the suppressions bucket (see [Setup]).
func NewSuppressions(ctx context.Context, js jetstream.JetStream, logger *slog.Logger) (*Suppressions, error) {
	kv, err := js.KeyValue(ctx, BucketSuppressions)
	if err != nil {
		return nil, fmt.Errorf("suppressions: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("suppressions: %w", err)
	}
	return newSuppressions(kv, st.TTL(), time.Now, logger), nil
}

func newSuppressions(kv jetstream.KeyValue, ttl time.Duration, now func() time.Time, logger *slog.Logger) *Suppressions {
	return &Suppressions{kv: kv, ttl: ttl, now: now, logger: logger, keys: map[string]time.Time{}, ready: make(chan struct{})}
}

// suppressionKey hides the address behind a hash: KV keys allow a narrow
// alphabet, and the key space should not list addresses.
func suppressionKey(channel, address string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(address))))
	return channel + "." + hex.EncodeToString(sum[:20])
}

// Add suppresses address on channel.
func (s *Suppressions) Add(ctx context.Context, channel, address, reason string) error {
	at := s.now().UTC()
	data, err := json.Marshal(Suppression{Channel: channel, Address: address, Reason: oneLine(reason), At: at})
	if err != nil {
		return err
	}
	key := suppressionKey(channel, address)
	if _, err := s.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("suppress: %w", err)
	}
	s.mu.Lock()
	s.keys[key] = at
	s.mu.Unlock()
	return nil
}

// Remove lifts the suppression of address on every channel and reports how
// many it removed.
func (s *Suppressions) Remove(ctx context.Context, address string) (int, error) {
	n := 0
	for _, ch := range []string{"email", "sms"} {
		key := suppressionKey(ch, address)
		if _, err := s.kv.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		} else if err != nil {
			return n, fmt.Errorf("unsuppress: %w", err)
		}
		if err := s.kv.Purge(ctx, key); err != nil {
			return n, fmt.Errorf("unsuppress: %w", err)
		}
		s.mu.Lock()
		delete(s.keys, key)
		s.mu.Unlock()
		n++
	}
	return n, nil
}

// List returns every current suppression, newest first.
func (s *Suppressions) List(ctx context.Context) ([]Suppression, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("suppressions: %w", err)
	}
	out := []Suppression{}
	for key := range lister.Keys() {
		e, err := s.kv.Get(ctx, key)
		if err != nil {
			continue
		}
		var sup Suppression
		if json.Unmarshal(e.Value(), &sup) == nil {
			out = append(out, sup)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out, nil
}

// Contains reports whether address is suppressed on channel, from the
// in-memory mirror. An entry older than the bucket's TTL counts as expired
// even before the server's expiry reaches the mirror.
func (s *Suppressions) Contains(channel, address string) bool {
	key := suppressionKey(channel, address)
	s.mu.RLock()
	at, ok := s.keys[key]
	s.mu.RUnlock()
	return ok && (s.ttl <= 0 || s.now().Before(at.Add(s.ttl)))
}

// watch mirrors the bucket (additions, removals and TTL expiries) until ctx
// ends.
func (s *Suppressions) watch(ctx context.Context) error {
	return mirror(ctx, s.kv, "suppressions", s.logger, s.ready, func(e jetstream.KeyValueEntry) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if e.Operation() == jetstream.KeyValuePut {
			s.keys[e.Key()] = e.Created()
		} else {
			delete(s.keys, e.Key())
		}
	})
}
