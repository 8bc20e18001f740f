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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
)

// componentEndpointFailures is the endpoint_failures bucket, for health.
const componentEndpointFailures = "endpoint_failures"

// endpointFailureTTL is how long an endpoint's failing streak is kept
// without a new failed attempt: the bucket's TTL. An endpoint tried again
// after that starts a new streak.
const endpointFailureTTL = 30 * 24 * time.Hour

// EndpointFailure is an endpoint whose every attempt failed since a time:
// its failing streak, kept in the endpoint_failures bucket from its first
// failed attempt after a success (or ever) until its next success.
type EndpointFailure struct {
	Channel      string `json:"channel"`
	SubscriberID string `json:"subscriber_id"`
	EndpointID   string `json:"endpoint_id"`
	// Since is the first failed attempt of the streak, Last the latest.
	Since time.Time `json:"since"`
	Last  time.Time `json:"last"`
	// Failures counts the failed attempts of the streak (about: two
	// processes failing at the same moment count once).
	Failures int `json:"failures"`
	// Target is a hash of the address the streak was on: a streak on an
	// address that has since changed is over.
	Target string `json:"target"`
}

// endpointFailures keeps, per endpoint, since when every attempt failed,
// so that an endpoint failing for ChannelConfig.DisableAfter is disabled
// (and its owner told), as webhook platforms do. The streaks live in the
// endpoint_failures bucket, shared by every process, and in a mirror of it
// fed by a watch: a delivery checks the mirror only, and a write (a failure
// recorded, a streak cleared by a success) is one more asynchronous
// publish of the job. Only failing endpoints have an entry, so the happy
// path costs a map lookup.
//
// The mirror lags the other processes' writes by a moment, and two writes
// may cross (a success clearing a streak while another process records a
// failure with the old start): before disabling, the delivery log is read,
// and an endpoint with any notification sent since the streak's start is
// not disabled (its streak starts again).
type endpointFailures struct {
	kv     jetstream.KeyValue
	logger *slog.Logger

	mu      sync.RWMutex
	streaks map[string]EndpointFailure // by failureKey
	ready   chan struct{}
}

func newEndpointFailures(kv jetstream.KeyValue, logger *slog.Logger) *endpointFailures {
	return &endpointFailures{kv: kv, logger: logger, streaks: map[string]EndpointFailure{}, ready: make(chan struct{})}
}

// failureKey is an endpoint's key in the bucket: channel.subscriber.endpoint
// (subscriber and endpoint ids hold no dot).
func failureKey(channel, subscriberID, endpointID string) string {
	return channel + "." + subscriberID + "." + endpointID
}

// targetHash identifies an endpoint's address without storing it.
func targetHash(target string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(target)))
	return hex.EncodeToString(sum[:8])
}

// get returns the streak of key, if there is one.
func (f *endpointFailures) get(key string) (EndpointFailure, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.streaks[key]
	return e, ok
}

// putMsg records streak e of key, locally and in a message to publish.
func (f *endpointFailures) putMsg(key string, e EndpointFailure) *nats.Msg {
	f.mu.Lock()
	f.streaks[key] = e
	f.mu.Unlock()
	data, _ := json.Marshal(e) // a struct of strings, times and an int
	return &nats.Msg{Subject: "$KV." + BucketEndpointFailures + "." + key, Data: data}
}

// clearMsg ends the streak of key, locally and in a message to publish: a
// purge, which leaves a marker that ages out with the bucket's TTL.
func (f *endpointFailures) clearMsg(key string) *nats.Msg {
	f.mu.Lock()
	delete(f.streaks, key)
	f.mu.Unlock()
	m := nats.NewMsg("$KV." + BucketEndpointFailures + "." + key)
	m.Header.Set("KV-Operation", "PURGE")
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	return m
}

// list returns every streak, the longest first.
func (f *endpointFailures) list() []EndpointFailure {
	f.mu.RLock()
	out := make([]EndpointFailure, 0, len(f.streaks))
	for _, e := range f.streaks {
		out = append(out, e)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return failureKey(out[i].Channel, out[i].SubscriberID, out[i].EndpointID) < failureKey(out[j].Channel, out[j].SubscriberID, out[j].EndpointID)
	})
	return out
}

// watch mirrors the bucket until ctx ends.
func (f *endpointFailures) watch(ctx context.Context) error {
	return mirror(ctx, f.kv, "endpoint failures", f.logger, f.ready, func(e jetstream.KeyValueEntry) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if e.Operation() != jetstream.KeyValuePut {
			delete(f.streaks, e.Key())
			return
		}
		var s EndpointFailure
		if err := json.Unmarshal(e.Value(), &s); err != nil || s.Since.IsZero() {
			f.logger.Warn("unreadable endpoint failure entry ignored", "key", e.Key())
			return
		}
		f.streaks[e.Key()] = s
	})
}

// FailingEndpoints returns the endpoints whose every attempt failed since
// a time, the longest failing first: those ChannelConfig.DisableAfter
// will disable unless they work again.
func (d *Dispatcher) FailingEndpoints() []EndpointFailure { return d.fails.list() }

// tracksFailures reports whether t's channel disables endpoints that fail
// for long, and t is a delivery to a subscriber's endpoint.
func (t *task) tracksFailures() bool {
	return t.dl.cfg.DisableAfter > 0 && t.m.job.To == nil && t.ep != nil
}

// sendWorked ends the failing streak of t's endpoint, if it has one.
func (t *task) sendWorked() {
	if !t.tracksFailures() {
		return
	}
	f := t.dl.d.fails
	key := failureKey(t.dl.name, t.target.SubscriberID, t.target.EndpointID)
	if _, ok := f.get(key); ok {
		t.publish(f.clearMsg(key), false)
	}
}

// sendFailed records a failed attempt in the failing streak of t's
// endpoint. When the streak is DisableAfter long, with nothing sent to the
// endpoint since it began, it returns the failure as a permanent one that
// disables the endpoint (fail carries that out and tells its owner);
// otherwise err and class as they are.
func (t *task) sendFailed(err error, class channels.Classification) (error, channels.Classification) {
	if !t.tracksFailures() {
		return err, class
	}
	dl := t.dl
	f := dl.d.fails
	key := failureKey(dl.name, t.target.SubscriberID, t.target.EndpointID)
	if class.Action == channels.DisableEndpoint {
		// Disabled anyway: a streak left behind would count against the
		// endpoint once it is enabled again.
		if _, ok := f.get(key); ok {
			t.publish(f.clearMsg(key), false)
		}
		return err, class
	}
	now := dl.d.cfg.Now().UTC()
	target := targetHash(t.ep.Target())
	streak, ok := f.get(key)
	if !ok || streak.Target != target {
		streak = EndpointFailure{Channel: dl.name, SubscriberID: t.target.SubscriberID, EndpointID: t.target.EndpointID, Since: now, Target: target}
	}
	if age := now.Sub(streak.Since); age >= dl.cfg.DisableAfter {
		sent, lerr := t.sentSince(streak.Since)
		switch {
		case lerr != nil:
			// Decided at a later failure; the log's trouble is reported.
			dl.infraTrouble(componentDeliveryLog, lerr)
		case sent:
			streak.Since, streak.Failures = now, 0 // it worked meanwhile
		default:
			t.publish(f.clearMsg(key), false)
			return fmt.Errorf("every attempt failed for %s, since %s; last: %w",
				roundAge(age), streak.Since.Format(time.RFC3339), err), channels.Classification{Permanent: true, Action: channels.DisableEndpoint}
		}
	}
	streak.Last, streak.Failures = now, streak.Failures+1
	t.publish(f.putMsg(key, streak), false)
	return err, class
}

// sentSince reports whether the delivery log holds a notification sent to
// t's endpoint since since.
func (t *task) sentSince(since time.Time) (bool, error) {
	recs, err := t.dl.d.log.list(t.dl.sendCtx, Query{SubscriberID: t.target.SubscriberID, Since: since, Limit: 10000})
	if err != nil {
		return false, err
	}
	for _, r := range recs {
		if r.EndpointID == t.target.EndpointID && r.Channel == t.dl.name && r.Outcome.sent() {
			return true, nil
		}
	}
	return false, nil
}

// roundAge writes a streak's length in days and hours, or hours and
// minutes when shorter than a day.
func roundAge(d time.Duration) string {
	if d >= 24*time.Hour {
		days, hours := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if hours == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, hours)
	}
	return d.Round(time.Minute).String()
}

// answeredRefusal reports whether err is a destination's own answer
// refusing the message while working (a 3xx or 4xx other than 408, 425
// and 429): for its slots and circuit breaker the destination answered,
// even when the message is retried (a webhook's 404 during a deploy).
func answeredRefusal(err error) bool {
	var pe *channels.ProviderError
	return errors.As(err, &pe) && pe.Status >= 300 && pe.Status < 500 && !channels.RetryableStatus(pe.Status)
}
