package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/incident"
)

// DefaultBucket is the name of the key-value bucket of the ingest state.
const DefaultBucket = "ingest"

// Publisher publishes one valid event to the INCIDENTS stream, returning
// once it is stored (in Herald: dispatcher.PublishEvent, which sets
// Nats-Msg-Id to the event id, as `herald publish` does).
type Publisher func(ctx context.Context, ev *incident.Event) error

// StoreConfig configures a [Store].
type StoreConfig struct {
	// Bucket is the key-value bucket. Defaults to [DefaultBucket].
	Bucket string
	// Replicas of the bucket: 1, or 3 on a cluster. Defaults to 1.
	Replicas int
	// ClaimTimeout is how long an update claimed by a publisher that has
	// not confirmed it stays its own; after that another process
	// publishes it (the claimer died between claim and publish).
	// Defaults to 1 min.
	ClaimTimeout time.Duration
	// ClaimWait is how long a publish waits for another process to
	// release an incident's claim before giving up with a *BusyError.
	// Defaults to 5 s; negative gives up at once.
	ClaimWait time.Duration
	// Holder names this process in claims and leases. Defaults to the
	// host name and a random suffix.
	Holder string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with the zero fields set to their
// defaults.
func (c StoreConfig) WithDefaults() StoreConfig {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.ClaimTimeout == 0 {
		c.ClaimTimeout = time.Minute
	}
	if c.ClaimWait == 0 {
		c.ClaimWait = 5 * time.Second
	}
	if c.Holder == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Holder = host + "-" + hex.EncodeToString(b[:])
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c StoreConfig) validate() error {
	switch {
	case c.Replicas != 1 && c.Replicas != 3:
		return fmt.Errorf("ingest: replicas %d: want 1 or 3", c.Replicas)
	case c.ClaimTimeout < 0:
		return errors.New("ingest: the claim timeout must not be negative")
	}
	return nil
}

// Store keeps what the sources have published, their cursors and their
// leases in a JetStream key-value bucket shared by every Herald process.
// It is safe for concurrent use.
type Store struct {
	cfg StoreConfig
	kv  jetstream.KeyValue
	pub Publisher
	// locks serialise this process's publishes of one incident (the
	// claim keeps other processes out; within one process the holder is
	// the same), striped by the record key's hash.
	locks [64]sync.Mutex
}

// OpenStore creates the bucket (or opens it) and returns a store that
// publishes with pub.
func OpenStore(ctx context.Context, js jetstream.JetStream, pub Publisher, cfg StoreConfig) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, errors.New("ingest: a publisher is required")
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "Status-page sources: updates published per incident, poller cursors and leases",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: bucket %s: %w", cfg.Bucket, err)
	}
	return &Store{cfg: cfg, kv: kv, pub: pub}, nil
}

// Holder is the name of this process in claims and leases.
func (s *Store) Holder() string { return s.cfg.Holder }

// record is what the store knows of one incident of a source.
type record struct {
	// LastSeq is the highest sequence given to an update.
	LastSeq int64 `json:"last_seq"`
	// Updates maps an update's key to what happened to it.
	Updates map[string]*entry `json:"updates"`
	// Claim is set while a process publishes updates of the incident.
	Claim *claim `json:"claim,omitempty"`
	// Window is the maintenance window of the latest event published
	// with one: the window subscribers were last told of. Nil for an
	// incident, and in records written before windows were kept.
	Window *window `json:"window,omitempty"`
}

// window is a maintenance window as published.
type window struct {
	For   time.Time `json:"for"`
	Until time.Time `json:"until"`
	// Seen is the source's change time of the payload it came from.
	Seen *time.Time `json:"seen,omitempty"`
}

// same reports whether w spans the same time as o.
func (w *window) same(o window) bool { return w.For.Equal(o.For) && w.Until.Equal(o.Until) }

// entry is one update of a record.
type entry struct {
	Seq int64 `json:"seq"`
	// State is published, skipped (known before the source was first
	// read: never published), or empty (given a sequence, not yet
	// published).
	State string `json:"state,omitempty"`
}

// claim says which process publishes an incident's updates since when.
type claim struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

const (
	statePublished = "published"
	stateSkipped   = "skipped"
	// stateRefused: Herald refused the event itself (over the size limit,
	// invalid): recorded so that it neither blocks the incident's later
	// updates nor is offered again.
	stateRefused = "refused"
)

// Result is what one [Store.Publish] did.
type Result struct {
	// Published are the events this call published, in order.
	Published []*incident.Event
	// Skipped counts updates recorded as known without publishing them
	// (the first read of a source: see [Store.Publish]).
	Skipped int
	// Refused counts updates whose event Herald refused (too large,
	// invalid): logged and recorded, so the incident's later updates go on.
	Refused int
}

// ErrConflict is returned when the bucket kept changing under a write
// (other processes writing the same key) and the store gave up; the next
// payload or poll tries again.
var ErrConflict = errors.New("ingest: the record kept changing; try again")

// BusyError reports an incident whose updates another process is
// publishing, for longer than the store waits.
type BusyError struct {
	// IncidentID is the incident; Holder the process publishing it.
	IncidentID, Holder string
}

// Error names the incident and the process.
func (e *BusyError) Error() string {
	return fmt.Sprintf("ingest: incident %s is being published by %s", e.IncidentID, e.Holder)
}

// maxCASAttempts bounds the compare-and-set retries of one write.
const maxCASAttempts = 16

// Publish publishes the updates of inc that have not been published
// before, in order, each under the next sequence of its incident, and
// records them.
//
// With baseline set (the first read of a poller), the updates of an
// incident the store has no record of are recorded without being
// published, except the latest update of an incident still open:
// subscribers hear of what is going on, not of a page's history. An
// incident already recorded (by a webhook, or by an earlier first read
// that an error interrupted) is past its baseline: its new updates are
// published, baseline or not.
//
// A maintenance whose window (inc.ScheduledFor, inc.ScheduledUntil) is
// not the one last published, while no update is left to publish and its
// latest update is an announcement (status scheduled, not cancelled), was
// moved at the source without an update. Publish then publishes one
// synthetic update announcing the new window: the latest update's event
// with the id "<latest update's key>~window-<hash of the window>" (and
// ".<sequence>" after it when the window comes back to one that id
// already announced), the next sequence, the new window, no published_at
// (the dispatcher shows when it took the event) and notify unset (a moved
// window is news even when the latest update was quiet). The id depends
// only on the record and the window, so processes that see the move
// together, or again after a restart, publish it once. A payload whose
// change time (inc.ChangedAt) is not after that of the payload the
// published window came from is stale, and moves nothing. A record
// written before windows were kept takes the window it is shown as the
// published one, and publishes nothing for it.
//
// The incident is claimed (a compare-and-set write) before its updates
// are published, and released after, so that two processes never publish
// the same updates, nor one incident's updates out of order. While
// another process holds the claim, Publish waits for it up to
// StoreConfig.ClaimWait, then returns a *[BusyError]; a claim older than
// StoreConfig.ClaimTimeout (its holder died) is taken over, and updates
// it had not marked published are published again, under the same id and
// sequence, which the stream's and the fan-out's deduplication drop.
// Publishing stops at the first failure, whose error is returned; the
// rest waits for the next attempt.
func (s *Store) Publish(ctx context.Context, sourceKind string, inc *Incident, baseline bool) (Result, error) {
	var res Result
	if len(inc.Updates) == 0 {
		return res, nil
	}
	key := recordKey(sourceKind, inc.ID)
	lock := &s.locks[fnv32(key)%uint32(len(s.locks))]
	lock.Lock()
	defer lock.Unlock()
	var mine []Update
	var seqs []int64
	var holder string
	wait := s.cfg.ClaimWait
	pause := 50 * time.Millisecond
	for {
		err := s.modify(ctx, key, func(rec *record) bool {
			mine, seqs, res.Skipped, holder = mine[:0], seqs[:0], 0, ""
			now := s.cfg.Now()
			if c := rec.Claim; c != nil && c.By != s.cfg.Holder && now.Sub(c.At) < s.cfg.ClaimTimeout {
				holder = c.By
				return false
			}
			changed := false
			// The baseline is once per incident: a record means it was
			// read before.
			fresh := len(rec.Updates) == 0
			for i, u := range inc.Updates {
				e := rec.Updates[u.Key]
				if e == nil {
					rec.LastSeq++
					e = &entry{Seq: rec.LastSeq}
					rec.Updates[u.Key] = e
					changed = true
					if baseline && fresh && !(inc.Open && i == len(inc.Updates)-1) {
						e.State = stateSkipped
						res.Skipped++
						continue
					}
				}
				if e.State == "" {
					mine = append(mine, u)
					seqs = append(seqs, e.Seq)
				}
			}
			if len(mine) == 0 {
				u, seq, ok, moved := windowMove(rec, inc)
				changed = changed || moved
				if ok {
					mine = append(mine, u)
					seqs = append(seqs, seq)
				}
			}
			if len(mine) > 0 {
				rec.Claim = &claim{By: s.cfg.Holder, At: now}
				changed = true
			}
			return changed
		})
		if err != nil {
			return res, err
		}
		if holder == "" {
			break
		}
		if wait <= 0 {
			return res, &BusyError{IncidentID: inc.ID, Holder: holder}
		}
		d := min(pause, wait)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, ctx.Err()
		case <-t.C:
		}
		wait -= d
		pause = min(2*pause, time.Second)
	}
	if len(mine) == 0 {
		return res, nil
	}
	var pubErr error
	outcomes := make([]string, 0, len(mine)) // of mine[:len(outcomes)]
	for i, u := range mine {
		ev := u.Event
		ev.Sequence = seqs[i]
		if pubErr = s.pub(ctx, &ev); refusedEvent(pubErr) {
			// Bad input never stops the line: this update is recorded
			// refused, the incident's next ones are published.
			s.cfg.Logger.Warn("update refused by Herald: recorded, not published", "incident", inc.ID, "update", u.Key, "err", pubErr)
			outcomes, pubErr = append(outcomes, stateRefused), nil
			res.Refused++
			continue
		}
		if pubErr != nil {
			break
		}
		res.Published = append(res.Published, &ev)
		outcomes = append(outcomes, statePublished)
	}
	// Mark what was published or refused and release the claim.
	markErr := s.modify(context.WithoutCancel(ctx), key, func(rec *record) bool {
		for k, u := range mine[:len(outcomes)] {
			if e := rec.Updates[u.Key]; e != nil {
				e.State = outcomes[k]
			}
			if outcomes[k] != statePublished {
				continue
			}
			if ev := u.Event; ev.ScheduledFor != nil && ev.ScheduledUntil != nil {
				rec.Window = &window{For: ev.ScheduledFor.UTC(), Until: ev.ScheduledUntil.UTC(), Seen: inc.ChangedAt}
			}
		}
		if rec.Claim != nil && rec.Claim.By == s.cfg.Holder {
			rec.Claim = nil
		}
		return true
	})
	if pubErr != nil {
		return res, fmt.Errorf("ingest: publish %s: %w", mine[len(outcomes)].Key, pubErr)
	}
	if markErr != nil {
		s.cfg.Logger.Warn("updates published but not recorded: they will be published again, and dropped as duplicates",
			"incident", inc.ID, "err", markErr)
	}
	return res, nil
}

// windowMove returns the synthetic update announcing the window inc
// shows, with its sequence, when the window moved without an update (see
// [Store.Publish]); ok is false when there is none to publish. It records
// the update in rec, or adopts the window of a record written before
// windows were kept; changed reports whether rec changed.
func windowMove(rec *record, inc *Incident) (u Update, seq int64, ok, changed bool) {
	if inc.ScheduledFor == nil || inc.ScheduledUntil == nil || len(inc.Updates) == 0 {
		return u, 0, false, false
	}
	latest := inc.Updates[len(inc.Updates)-1]
	now := window{For: inc.ScheduledFor.UTC(), Until: inc.ScheduledUntil.UTC(), Seen: inc.ChangedAt}
	if rec.Window == nil {
		// What subscribers were told is unknown: take what is shown.
		if e := rec.Updates[latest.Key]; e != nil && e.State == statePublished {
			rec.Window = &now
			return u, 0, false, true
		}
		return u, 0, false, false
	}
	switch {
	case rec.Window.same(now),
		latest.Event.Status != incident.Scheduled || latest.Event.Cancelled,
		rec.Window.Seen != nil && inc.ChangedAt != nil && !inc.ChangedAt.After(*rec.Window.Seen):
		return u, 0, false, false
	}
	base := latest.Key + "~window-" + windowHash(now)
	key := base
	if e := rec.Updates[key]; e != nil && !(e.State == "" && e.Seq == rec.LastSeq) {
		// This id announced the window before (it came back to it), or
		// was given a sequence that later updates passed: a new id,
		// named after the sequence it gets (the one already given when
		// a publish of it failed).
		key = fmt.Sprintf("%s.%d", base, rec.LastSeq)
		if e := rec.Updates[key]; e == nil || e.State != "" {
			key = fmt.Sprintf("%s.%d", base, rec.LastSeq+1)
		}
	}
	ev := latest.Event
	ev.ID, ev.Sequence = key, rec.LastSeq+1
	ev.PublishedAt, ev.Notify = nil, nil
	ev.ScheduledFor, ev.ScheduledUntil = inc.ScheduledFor, inc.ScheduledUntil
	if ev.Validate() != nil {
		return u, 0, false, false // an update id too long to extend
	}
	ev.Sequence = 0
	e := rec.Updates[key]
	if e == nil {
		rec.LastSeq++
		e = &entry{Seq: rec.LastSeq}
		rec.Updates[key] = e
		changed = true
	}
	return Update{Key: key, Event: ev, At: latest.At}, e.Seq, true, changed
}

// windowHash is a short hash of a window, for synthetic update ids.
func windowHash(w window) string {
	sum := sha256.Sum256([]byte(w.For.UTC().Format(time.RFC3339Nano) + "/" + w.Until.UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(sum[:4])
}

// Known reports the sequence given to an update, and whether it was
// published (false when it was only recorded, or is not known).
func (s *Store) Known(ctx context.Context, sourceKind, incidentID, key string) (seq int64, published bool, err error) {
	rec, _, err := s.load(ctx, recordKey(sourceKind, incidentID))
	if err != nil {
		return 0, false, err
	}
	if e := rec.Updates[key]; e != nil {
		return e.Seq, e.State == statePublished, nil
	}
	return 0, false, nil
}

// modify applies change to the record under key and writes it back with
// a compare-and-set, trying again with a fresh copy on conflict. change
// returns false when it changed nothing (nothing is written).
func (s *Store) modify(ctx context.Context, key string, change func(*record) bool) error {
	for range maxCASAttempts {
		rec, rev, err := s.load(ctx, key)
		if err != nil {
			return err
		}
		if !change(rec) {
			return nil
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, data)
		} else {
			_, err = s.kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("ingest: write %s: %w", key, err)
		}
	}
	return ErrConflict
}

// load reads the record under key; revision 0 when there is none.
func (s *Store) load(ctx context.Context, key string) (*record, uint64, error) {
	rec := &record{Updates: map[string]*entry{}}
	e, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return rec, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("ingest: read %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), rec); err != nil {
		return nil, 0, fmt.Errorf("ingest: record %s is corrupt: %w", key, err)
	}
	if rec.Updates == nil {
		rec.Updates = map[string]*entry{}
	}
	return rec, e.Revision(), nil
}

// recordKey is the bucket key of an incident's record. Incident ids are
// letters, digits, '-' and '_', all valid in keys.
func recordKey(sourceKind, incidentID string) string {
	return "incident." + sourceKind + "." + incidentID
}

// Cursor is what a poller keeps between polls, in the bucket: the
// validators of the last answer of each URL it reads, and the outcome of
// its last poll. Every process sees the same cursor.
type Cursor struct {
	// Resources maps a URL path to its validators.
	Resources map[string]Validators `json:"resources"`
	// LastPoll is when the last poll ended, LastSuccess the last one
	// without an error.
	LastPoll    *time.Time `json:"last_poll,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// LastStatus is the HTTP status of the last answer (304 when nothing
	// changed).
	LastStatus int `json:"last_status,omitempty"`
	// LastError is the error of the last poll, empty after a success.
	LastError string `json:"last_error,omitempty"`
	// Failures counts consecutive failed polls.
	Failures int `json:"failures"`
	// NextPoll is when the poller plans to poll again.
	NextPoll *time.Time `json:"next_poll,omitempty"`
	// Published counts the events the source published.
	Published int64 `json:"published"`
	// Holder is the process that polled last.
	Holder string `json:"holder,omitempty"`
}

// Validators are an answer's ETag and Last-Modified, and whether the
// resource was read in full once (the first read records what the page
// already shows: see [Store.Publish]).
type Validators struct {
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Read         bool   `json:"read,omitempty"`
}

// cursorKey is the bucket key of a source's cursor.
func cursorKey(source string) string { return "cursor." + source }

// leaseKey is the bucket key of a source's poll lease.
func leaseKey(source string) string { return "lease." + source }

// ErrCorrupt is wrapped by the error of a cursor that does not decode.
var ErrCorrupt = errors.New("corrupt record")

// LoadCursor reads a source's cursor; the zero Cursor when there is none.
func (s *Store) LoadCursor(ctx context.Context, source string) (Cursor, uint64, error) {
	var c Cursor
	e, err := s.kv.Get(ctx, cursorKey(source))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return c, 0, nil
	case err != nil:
		return c, 0, fmt.Errorf("ingest: read the cursor of %s: %w", source, err)
	}
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return Cursor{}, e.Revision(), fmt.Errorf("ingest: the cursor of %s: %w: %v", source, ErrCorrupt, err)
	}
	return c, e.Revision(), nil
}

// saveCursor writes a source's cursor. The poll lease makes one process
// the writer; the write is unconditional so that a corrupt cursor is
// replaced.
func (s *Store) saveCursor(ctx context.Context, source string, c Cursor) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, cursorKey(source), data); err != nil {
		return fmt.Errorf("ingest: write the cursor of %s: %w", source, err)
	}
	return nil
}

// lease is who polls a source until when.
type lease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Acquire takes or renews the poll lease of source for d. It reports
// false, with the current holder, while another process holds an
// unexpired lease.
func (s *Store) Acquire(ctx context.Context, source string, d time.Duration) (bool, string, error) {
	key := leaseKey(source)
	for range maxCASAttempts {
		now := s.cfg.Now()
		mine, err := json.Marshal(lease{Holder: s.cfg.Holder, Until: now.Add(d)})
		if err != nil {
			return false, "", err
		}
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = s.kv.Create(ctx, key, mine)
		case err != nil:
			return false, "", fmt.Errorf("ingest: read the lease of %s: %w", source, err)
		default:
			var l lease
			if json.Unmarshal(e.Value(), &l) == nil && l.Holder != s.cfg.Holder && now.Before(l.Until) {
				return false, l.Holder, nil
			}
			_, err = s.kv.Update(ctx, key, mine, e.Revision())
		}
		if err == nil {
			return true, s.cfg.Holder, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return false, "", fmt.Errorf("ingest: write the lease of %s: %w", source, err)
		}
	}
	return false, "", ErrConflict
}

// Release gives up the poll lease of source if this process holds it, so
// that another process takes over at once (on shutdown).
func (s *Store) Release(ctx context.Context, source string) error {
	key := leaseKey(source)
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var l lease
	if json.Unmarshal(e.Value(), &l) != nil || l.Holder != s.cfg.Holder {
		return nil
	}
	err = s.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return nil // renewed or taken meanwhile: not ours to remove
	}
	return err
}

// fnv32 is the FNV-1a hash of s.
func fnv32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// refusedEvent reports whether err is Herald refusing an event itself
// (too large, invalid), which publishing it again would not change.
func refusedEvent(err error) bool {
	var tooLarge *incident.TooLargeError
	var fe incident.FieldErrors
	return errors.As(err, &tooLarge) || errors.As(err, &fe)
}
