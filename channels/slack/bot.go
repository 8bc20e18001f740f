package slack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/heraldhq/herald/channels"
)

const (
	// maxCAS bounds the compare-and-set attempts of one store step.
	maxCAS = 8
	// busyRetry is the delay suggested to a delivery that found its
	// thread held by another process.
	busyRetry = time.Second
	// standalonePrefix keys the records of bot-mode messages that belong
	// to no incident (service messages): one record per delivery.
	standalonePrefix = "delivery/"
)

// errLeaseLost: another send took the thread over while this one was
// working (it outlived its lease). Retryable.
var errLeaseLost = errors.New("slack thread taken over by another delivery")

// chat.update answers after which the parent is left as it is and the
// delivery still counts: its reply is in the thread.
var parentGone = map[string]bool{"message_not_found": true}
var parentFrozen = map[string]bool{"cant_update_message": true, "edit_window_closed": true}

// sendBot posts msg to the Slack channel channelID as Herald's bot.
func (c *Channel) sendBot(ctx context.Context, channelID string, msg *channels.Message) (channels.Receipt, error) {
	start := c.cfg.Now()
	sum := channels.HashBody(msg.Body)
	fail := func(err error) (channels.Receipt, error) {
		c.logRefusal(ctx, "slack message refused", msg, err, slog.String("slack_channel", channelID))
		return channels.Receipt{Duration: c.since(start), BodySHA256: sum}, fmt.Errorf("slack channel %s: %w", channelID, err)
	}
	body, err := decodeMessage("body", msg.Body)
	if err != nil {
		return fail(channels.Permanent(err))
	}
	var parent *apiMessage
	key := ThreadKey{IncidentID: msg.IncidentID, ChannelID: channelID}
	if msg.IncidentID == "" {
		key.IncidentID = standalonePrefix + msg.ID
	} else {
		if len(msg.Parent) == 0 {
			return fail(channels.Permanent(fmt.Errorf("%w: incident update without a parent message", ErrInvalidMessage)))
		}
		if parent, err = decodeMessage("parent", msg.Parent); err != nil {
			return fail(channels.Permanent(err))
		}
	}

	unlock, err := c.locks.lock(ctx, key)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	tx := &threadTx{c: c, key: key, msg: msg, lease: rand.Text()}
	if err := tx.begin(ctx); err != nil {
		if errors.Is(err, errDone) {
			ts := tx.th.Posted[msg.ID]
			c.debug(ctx, "slack message already posted", msg, slog.String("slack_channel", channelID), slog.String("ts", ts))
			return channels.Receipt{ProviderID: ts, Status: 200, Detail: "slack channel " + channelID + ": already posted", Duration: c.since(start), BodySHA256: sum}, nil
		}
		return fail(err)
	}
	defer tx.abandon(ctx)

	var (
		receipt = channels.Receipt{Status: 200, BodySHA256: sum}
		did     []string
	)
	done := func() (channels.Receipt, error) { // a lease still held is released by tx.abandon
		receipt.Detail = "slack channel " + channelID + ": " + strings.Join(did, ", ")
		receipt.Duration = c.since(start)
		c.debug(ctx, "slack message delivered", msg, slog.String("slack_channel", channelID), slog.String("ts", receipt.ProviderID), slog.String("did", strings.Join(did, ", ")))
		return receipt, nil
	}

	// A message of no incident: one post, no thread.
	if parent == nil {
		ts, err := tx.post(ctx, body, "", func(t *Thread, ts string) { t.Posted[msg.ID] = ts }, true)
		if err != nil {
			return fail(err)
		}
		receipt.ProviderID, did = ts, append(did, "posted")
		return done()
	}

	// The first update to reach the channel posts the parent.
	if tx.th.ParentTS == "" {
		only := !c.cfg.ReplyFirstUpdate
		ts, err := tx.post(ctx, parent, "", func(t *Thread, ts string) {
			t.ParentTS, t.Sequence, t.Status, t.Closed = ts, msg.Sequence, msg.Status, msg.Closed
			if only {
				t.Posted[msg.ID] = ts
			}
		}, only)
		if err != nil {
			return fail(err)
		}
		receipt.ProviderID, did = ts, append(did, "parent posted")
	}

	// Every other update is a thread reply.
	if _, ok := tx.th.Posted[msg.ID]; !ok {
		newer := msg.Sequence > tx.th.Sequence
		ts, err := tx.post(ctx, body, tx.th.ParentTS, func(t *Thread, ts string) { t.Posted[msg.ID] = ts }, !newer)
		if err != nil {
			return fail(err)
		}
		receipt.ProviderID, did = ts, append(did, "reply posted")
	}

	// The parent shows the newest update; an older one leaves it be.
	if tx.th.ParentTS != "" && msg.Sequence > tx.th.Sequence {
		shown := func(t *Thread) { t.Sequence, t.Status, t.Closed = msg.Sequence, msg.Status, msg.Closed }
		err := c.api.update(ctx, channelID, tx.th.ParentTS, parent)
		var pe *channels.ProviderError
		code := ""
		if errors.As(err, &pe) {
			code = pe.Code
		}
		switch {
		case err == nil:
			did = append(did, "parent updated")
		case parentGone[code]:
			// Deleted in Slack: the next update starts a new parent.
			c.cfg.Logger.WarnContext(ctx, "slack parent message gone; the next update starts a new one", "slack_channel", channelID, "delivery", msg.ID, "code", code)
			prev := shown
			shown = func(t *Thread) { prev(t); t.ParentTS = "" }
			did = append(did, "parent gone")
		case parentFrozen[code]:
			c.cfg.Logger.WarnContext(ctx, "slack parent message cannot be edited", "slack_channel", channelID, "delivery", msg.ID, "code", code)
			did = append(did, "parent not editable")
		default:
			return fail(fmt.Errorf("chat.update: %w", err))
		}
		if err := tx.commit(ctx, shown, true); err != nil {
			return fail(err)
		}
	}
	if receipt.ProviderID == "" {
		receipt.ProviderID = tx.th.Posted[msg.ID]
	}
	return done()
}

// errDone: the delivery was already posted (redelivery).
var errDone = errors.New("already posted")

// threadTx is one send's work on one thread record: load, take the lease,
// record each message right after posting it, give the lease back.
type threadTx struct {
	c     *Channel
	key   ThreadKey
	msg   *channels.Message
	lease string
	th    Thread
	rev   uint64
	held  bool
}

// begin loads the record and takes the lease. It returns errDone when the
// delivery has nothing left to do.
func (tx *threadTx) begin(ctx context.Context) error {
	store := tx.c.cfg.Threads
	for range maxCAS {
		th, rev, err := store.Load(ctx, tx.key)
		if err != nil {
			return storeError(err)
		}
		tx.th, tx.rev = th, rev
		if _, ok := th.Posted[tx.msg.ID]; ok && tx.msg.Sequence <= th.Sequence {
			return errDone
		}
		now := tx.c.cfg.Now()
		if th.Lease != "" && now.Before(th.LeaseUntil) {
			return channels.RetryAfter(min(th.LeaseUntil.Sub(now), busyRetry), ErrThreadBusy)
		}
		next := th.clone()
		next.Lease, next.LeaseDelivery = tx.lease, tx.msg.ID
		next.LeaseUntil, next.Updated = now.Add(tx.c.cfg.ThreadLease), now
		rev, err = store.Store(ctx, tx.key, next, rev)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return storeError(err)
		}
		tx.th, tx.rev, tx.held = next, rev, true
		return nil
	}
	return channels.RetryAfter(busyRetry, ErrThreadBusy)
}

// post waits for the channel's turn, posts m (in threadTS's thread when
// set), and records it with record, before returning. When the record
// cannot be written, the message is deleted again (best effort), so that
// the retry does not leave a double.
func (tx *threadTx) post(ctx context.Context, m *apiMessage, threadTS string, record func(*Thread, string), release bool) (string, error) {
	channelID := tx.key.ChannelID
	if err := tx.c.limits.wait(ctx, channelID); err != nil {
		return "", err
	}
	ts, err := tx.c.api.post(ctx, channelID, m, threadTS)
	if err != nil {
		return "", fmt.Errorf("chat.postMessage: %w", err)
	}
	if err := tx.commit(ctx, func(t *Thread) { record(t, ts) }, release); err != nil {
		tx.undo(ctx, ts, err)
		return "", err
	}
	return ts, nil
}

// commit applies change to the record and stores it, re-applying it to the
// record reloaded after a conflict as long as this send holds the lease.
// It renews the lease, or gives it up when release is set. It outlives
// ctx's cancellation (by at most Config.Timeout): what was posted must be
// recorded.
func (tx *threadTx) commit(ctx context.Context, change func(*Thread), release bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tx.c.cfg.Timeout)
	defer cancel()
	store := tx.c.cfg.Threads
	for range maxCAS {
		next := tx.th.clone()
		if next.Posted == nil {
			next.Posted = make(map[string]string)
		}
		change(&next)
		now := tx.c.cfg.Now()
		next.Updated = now
		if release {
			next.Lease, next.LeaseDelivery, next.LeaseUntil = "", "", time.Time{}
		} else {
			next.LeaseUntil = now.Add(tx.c.cfg.ThreadLease)
		}
		rev, err := store.Store(ctx, tx.key, next, tx.rev)
		if err == nil {
			tx.th, tx.rev = next, rev
			tx.held = tx.held && !release
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return storeError(err)
		}
		th, rev, err := store.Load(ctx, tx.key)
		if err != nil {
			return storeError(err)
		}
		if th.Lease != tx.lease {
			tx.held = false
			return errLeaseLost
		}
		tx.th, tx.rev = th, rev
	}
	return errLeaseLost
}

// undo deletes a message that could not be recorded.
func (tx *threadTx) undo(ctx context.Context, ts string, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tx.c.cfg.Timeout)
	defer cancel()
	log := tx.c.cfg.Logger
	if err := tx.c.api.delete(ctx, tx.key.ChannelID, ts); err != nil {
		log.WarnContext(ctx, "slack message posted but neither recorded nor deleted: a retry may post it again",
			"slack_channel", tx.key.ChannelID, "delivery", tx.msg.ID, "ts", ts, "cause", cause, "error", err)
		return
	}
	log.WarnContext(ctx, "slack message posted but not recorded: deleted for the retry",
		"slack_channel", tx.key.ChannelID, "delivery", tx.msg.ID, "ts", ts, "cause", cause)
}

// abandon gives the lease up after a failure, so that the next delivery of
// the thread does not wait for it to expire.
func (tx *threadTx) abandon(ctx context.Context) {
	if !tx.held {
		return
	}
	if err := tx.commit(ctx, func(*Thread) {}, true); err != nil {
		tx.c.cfg.Logger.WarnContext(ctx, "slack thread lease not released", "slack_channel", tx.key.ChannelID, "delivery", tx.msg.ID, "error", err)
	}
}

// storeError classifies a thread store failure: a corrupt record is
// permanent (retrying reads it again), anything else retryable.
func storeError(err error) error {
	if errors.Is(err, ErrCorruptThread) {
		return channels.Permanent(err)
	}
	return fmt.Errorf("thread store: %w", err)
}
