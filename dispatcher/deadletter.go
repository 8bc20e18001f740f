package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is one entry of the DEAD_LETTERS stream: a bad event or an
// undeliverable job, with why it landed there.
type DeadLetter struct {
	// Seq is the entry's sequence in DEAD_LETTERS; replay uses it.
	Seq uint64 `json:"seq"`
	// Subject is the subject the message came from (incidents.<id> or
	// deliveries.<channel>); replay publishes it back there.
	Subject string `json:"subject"`
	// Ref is the event id or delivery id, when known.
	Ref string `json:"ref,omitempty"`
	// Reason says why, secret-free.
	Reason string `json:"reason"`
	// Attempts is how many deliveries the job had.
	Attempts int `json:"attempts,omitempty"`
	// FailedAt is when it was dead-lettered.
	FailedAt time.Time `json:"failed_at"`
	// Data is the original message body (as a JSON string when it is not
	// JSON).
	Data json.RawMessage `json:"data"`

	raw []byte
}

// DeadLetters reads, writes and replays the DEAD_LETTERS stream.
type DeadLetters struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	now    func() time.Time
}

// NewDeadLetters opens the dead letters; the stream must exist (see
// [Setup]).
func NewDeadLetters(ctx context.Context, js jetstream.JetStream) (*DeadLetters, error) {
	s, err := js.Stream(ctx, StreamDeadLetters)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return &DeadLetters{js: js, stream: s, now: time.Now}, nil
}

// add stores data, which came from subject, as a dead letter.
func (d *DeadLetters) add(ctx context.Context, subject string, data []byte, ref, reason string, attempts int) error {
	if _, err := d.js.PublishMsg(ctx, d.msg(subject, data, ref, reason, attempts)); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	return nil
}

// msg returns the message that stores data, which came from subject, as a
// dead letter under ref, with reason and the attempts made.
func (d *DeadLetters) msg(subject string, data []byte, ref, reason string, attempts int) *nats.Msg {
	subject = jobSubject(subject)
	msg := nats.NewMsg(subjDeadLetters + subject)
	msg.Data = data
	msg.Header.Set(hdrOrigSubj, subject)
	msg.Header.Set(hdrReason, oneLine(reason))
	msg.Header.Set(hdrFailedAt, d.now().UTC().Format(time.RFC3339Nano))
	if ref != "" {
		msg.Header.Set(hdrRef, ref)
	}
	if attempts > 0 {
		msg.Header.Set(hdrAttempts, strconv.Itoa(attempts))
	}
	return msg
}

// List returns up to limit dead letters, oldest first, starting after
// sequence after (0: from the beginning).
func (d *DeadLetters) List(ctx context.Context, after uint64, limit int) ([]DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	info, err := d.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	out := []DeadLetter{}
	if info.State.Msgs == 0 || info.State.LastSeq <= after {
		return out, nil
	}
	cons, closeReader, err := openReader(ctx, d.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	defer closeReader()
	err = readOrdered(cons, func(msg jetstream.Msg, md *jetstream.MsgMetadata) bool {
		out = append(out, decodeDeadLetter(md.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data()))
		return len(out) < limit
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return out, nil
}

// Get returns the dead letter at seq.
func (d *DeadLetters) Get(ctx context.Context, seq uint64) (*DeadLetter, error) {
	raw, err := d.stream.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	dl := decodeDeadLetter(raw.Sequence, raw.Subject, raw.Header, raw.Data)
	return &dl, nil
}

// Find returns the dead letters whose ref (event or delivery id) is ref.
func (d *DeadLetters) Find(ctx context.Context, ref string) ([]DeadLetter, error) {
	var out []DeadLetter
	var after uint64
	for {
		page, err := d.List(ctx, after, 500)
		if err != nil {
			return nil, err
		}
		for _, dl := range page {
			if dl.Ref == ref {
				out = append(out, dl)
			}
		}
		if len(page) < 500 {
			return out, nil
		}
		after = page[len(page)-1].Seq
	}
}

// Replay publishes the dead letter at seq back to its original subject and
// removes it from the dead letters. A replayed job is sent again unless the
// delivery log shows it was delivered; a replayed event is fanned out again
// unless its update was already fanned out.
func (d *DeadLetters) Replay(ctx context.Context, seq uint64) error {
	dl, err := d.Get(ctx, seq)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(dl.Subject)
	msg.Data = dl.raw
	msg.Header.Set(hdrReplay, strconv.FormatUint(seq, 10))
	// A fresh Nats-Msg-Id: the original id may still be inside the
	// duplicate window, and then the server would drop the replay.
	id := dl.Ref
	if id == "" {
		id = "deadletter"
	}
	msg.Header.Set(hdrMsgID, id+":replay:"+strconv.FormatUint(seq, 10))
	if dl.Ref != "" {
		msg.Header.Set(hdrOrigMsgID, dl.Ref)
	}
	if _, err := d.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("replay %d: %w", seq, err)
	}
	if err := d.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("replay %d: published, but not removed from the dead letters: %w", seq, err)
	}
	return nil
}

// ReplayAll replays every dead letter present when it starts (entries that
// fail again and come back are left for the next call) and returns how many
// it replayed.
func (d *DeadLetters) ReplayAll(ctx context.Context) (int, error) {
	info, err := d.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead letters: %w", err)
	}
	last := info.State.LastSeq
	n := 0
	var after uint64
	for after < last {
		page, err := d.List(ctx, after, 500)
		if err != nil || len(page) == 0 {
			return n, err
		}
		for _, dl := range page {
			if dl.Seq > last {
				return n, nil
			}
			if err := d.Replay(ctx, dl.Seq); err != nil {
				return n, err
			}
			n++
			after = dl.Seq
		}
	}
	return n, nil
}

func decodeDeadLetter(seq uint64, subject string, h nats.Header, data []byte) DeadLetter {
	dl := DeadLetter{
		Seq:     seq,
		Subject: h.Get(hdrOrigSubj),
		Ref:     h.Get(hdrRef),
		Reason:  h.Get(hdrReason),
		raw:     data,
	}
	if dl.Subject == "" {
		dl.Subject = strings.TrimPrefix(subject, subjDeadLetters)
	}
	dl.Attempts, _ = strconv.Atoi(h.Get(hdrAttempts))
	dl.FailedAt, _ = time.Parse(time.RFC3339Nano, h.Get(hdrFailedAt))
	if json.Valid(data) {
		dl.Data = data
	} else {
		quoted, _ := json.Marshal(string(data))
		dl.Data = quoted
	}
	return dl
}

// oneLine keeps reasons fit for a header: no CR/LF, at most 1000 bytes.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1000 {
		s = s[:1000]
	}
	return s
}

// Erase removes for good (overwriting it in the store) every dead letter
// that is a notice addressed directly to subscriber subscriberID (a
// confirmation, a magic link, a code: they carry the address they went
// to). A subscription deleted by its owner keeps no address here either;
// the dead letters of its notifications hold ids only and stay. It
// returns how many were removed.
func (d *DeadLetters) Erase(ctx context.Context, subscriberID string) (int, error) {
	info, err := d.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead letters: %w", err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	cons, closeReader, err := openReader(ctx, d.stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return 0, fmt.Errorf("dead letters: %w", err)
	}
	defer closeReader()
	var doomed []uint64
	err = readOrdered(cons, func(msg jetstream.Msg, md *jetstream.MsgMetadata) bool {
		if j, err := decodeJob(msg.Data()); err == nil && j.To != nil && j.SubscriberID == subscriberID {
			doomed = append(doomed, md.Sequence.Stream)
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("dead letters: %w", err)
	}
	for i, seq := range doomed {
		if err := d.stream.SecureDeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return i, fmt.Errorf("dead letters: erasing %d: %w", seq, err)
		}
	}
	return len(doomed), nil
}
