package dispatcher

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// Scheduled maintenance.
//
// The update that announces a maintenance (status scheduled, with its
// window) is fanned out like any update; its fan-out also parks, per
// channel and lead time, reminder jobs of the same targets on
// parked.<channel>, due the lead time before the window starts. When one
// comes due, the delivery loop checks the incident snapshot: a reminder
// whose maintenance moved, was cancelled, has started or was announced
// again since is skipped and recorded (superseded), so nothing needs
// cancelling and the check holds across processes and restarts. Parked
// jobs are jobs seen before: each target takes its delivery's lease and
// reads the log before it is sent, so a reminder is never sent twice.

// KindReminder is the kind of the jobs that remind an endpoint of a
// scheduled maintenance, some time before its window.
const KindReminder = "maintenance.reminder"

// Expired: a maintenance reminder that could no longer go out in time (the
// maintenance had begun, or the endpoint's quiet hours last past its
// start); it is not sent late.
const Expired Outcome = "expired"

// Reminder is what a reminder job adds to the job: which announcement it
// repeats, how long before which window.
type Reminder struct {
	// Of is the event id of the update that announced the maintenance
	// (the job's EventID is the reminder's own, see reminderEventID).
	Of string `json:"of"`
	// Lead is how long before Start the reminder is due.
	Lead time.Duration `json:"lead"`
	// Start and End are the window the announcement gave.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// updateEventID returns the event id of the update the job renders: the
// announcement a reminder repeats, else the job's own event.
func (j *Job) updateEventID() string {
	if j.Kind == KindReminder && j.Reminder != nil {
		return j.Reminder.Of
	}
	return j.EventID
}

// reminderEventID is the event id of the reminder of update eventID lead
// before its window ("MNT-7:1#reminder-24h"): each target's delivery id
// derives from it, so the reminder of each lead is a delivery of its own.
func reminderEventID(eventID string, lead time.Duration) string {
	return eventID + "#reminder-" + leadName(lead)
}

// leadName writes a lead time short: "24h", "1h30m", "1m30s", "8s".
func leadName(d time.Duration) string {
	s := d.String()
	for _, zero := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(s, zero) {
			s = strings.TrimSuffix(s, zero[1:])
		}
	}
	return s
}

// reminderBatchID is the id of batch number bucket of a reminder on a
// channel: a resumed fan-out parks the same batches under the same ids.
func reminderBatchID(reminderEventID, channel string, bucket int) string {
	return hashID("rem_", reminderEventID, channel, strconv.Itoa(bucket))
}

// MaintenanceConfig tunes the notifications of scheduled maintenance.
type MaintenanceConfig struct {
	// Reminders lists, per channel, how long before a maintenance's
	// window reminders go out. A channel the map does not name gets its
	// default: 24 h and 1 h before for email, Slack and webhooks, 1 h
	// before for SMS; an empty list sends that channel no reminder. Each
	// lead time is positive, at most 31 days, and listed once.
	Reminders map[string][]time.Duration
}

// defaultReminders returns the default lead times of channel.
func defaultReminders(channel string) []time.Duration {
	if channel == channels.SMS {
		return []time.Duration{time.Hour}
	}
	return []time.Duration{24 * time.Hour, time.Hour}
}

// maxLead bounds a reminder's lead time.
const maxLead = 31 * 24 * time.Hour

// WithDefaults returns c with every channel's lead times set (defaults for
// those not named), longest first. The caller's map is not changed.
func (c MaintenanceConfig) WithDefaults() MaintenanceConfig {
	out := make(map[string][]time.Duration, len(channels.Names()))
	for name, leads := range c.Reminders {
		out[name] = slices.Clone(leads)
	}
	for _, name := range channels.Names() {
		if _, ok := c.Reminders[name]; !ok {
			out[name] = defaultReminders(name)
		}
	}
	for _, leads := range out {
		slices.SortFunc(leads, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	}
	c.Reminders = out
	return c
}

func (c MaintenanceConfig) validate() error {
	known := map[string]bool{}
	for _, n := range channels.Names() {
		known[n] = true
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(c.Reminders)) {
		leads := c.Reminders[name]
		if !known[name] {
			errs = append(errs, fmt.Errorf("maintenance reminders: unknown channel %q", name))
			continue
		}
		for i, l := range leads {
			switch {
			case l <= 0 || l > maxLead:
				errs = append(errs, fmt.Errorf("maintenance reminders of %s: %s is not between 0 and %s", name, l, maxLead))
			case slices.Contains(leads[:i], l):
				errs = append(errs, fmt.Errorf("maintenance reminders of %s: %s is listed twice", name, l))
			}
		}
	}
	return errors.Join(errs...)
}

// Window is the time span of a scheduled maintenance.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// equal reports whether w and o are the same span.
func (w Window) equal(o Window) bool { return w.Start.Equal(o.Start) && w.End.Equal(o.End) }

// WindowMove records an update that moved a maintenance's window.
type WindowMove struct {
	// Sequence is the update that moved it.
	Sequence int64 `json:"sequence"`
	// From is the window subscribers were told of before.
	From Window `json:"from"`
}

// Maintenance is what an incident snapshot keeps of a scheduled
// maintenance: its window and state now, the update whose reminders
// stand, and what subscribers were told.
type Maintenance struct {
	// Window is the window as the latest update carrying one gives it.
	Window Window `json:"window"`
	// Status is the latest update's status; Cancelled whether it called
	// the maintenance off.
	Status    incident.Status `json:"status"`
	Cancelled bool            `json:"cancelled,omitempty"`
	// RemindersOf is the sequence of the update whose reminders stand:
	// the latest announcement (status scheduled) sent to subscribers.
	// Reminders parked by earlier updates are superseded.
	RemindersOf int64 `json:"reminders_of,omitempty"`
	// Announced is the window subscribers were last told of; nil before
	// any update was sent to them.
	Announced *Window `json:"announced,omitempty"`
	// Moves are the announcements that moved the announced window, with
	// the window before each: the latest maxMoves, oldest first.
	Moves []WindowMove `json:"moves,omitempty"`
}

// maxMoves bounds the moves a snapshot keeps.
const maxMoves = 20

// next returns the maintenance state after ev, the incident's new latest
// update; nil for an incident that never had a window. A quiet update
// (notify: false) changes the window and the status, not what subscribers
// were told: the reminders of the last announcement are then checked
// against the new window and skipped when it moved.
func (m *Maintenance) next(ev *incident.Event) *Maintenance {
	if m == nil && !ev.IsMaintenance() {
		return nil
	}
	n := &Maintenance{}
	if m != nil {
		*n = *m
		n.Moves = slices.Clone(m.Moves)
	}
	n.Status, n.Cancelled = ev.Status, ev.Cancelled
	if ev.IsMaintenance() {
		n.Window = Window{Start: ev.ScheduledFor.UTC(), End: ev.ScheduledUntil.UTC()}
	}
	if !ev.ShouldNotify() {
		return n
	}
	if ev.Status == incident.Scheduled && !ev.Cancelled {
		if n.Announced != nil && !n.Announced.equal(n.Window) {
			n.Moves = append(n.Moves, WindowMove{Sequence: ev.Sequence, From: *n.Announced})
			if k := len(n.Moves) - maxMoves; k > 0 {
				n.Moves = slices.Delete(n.Moves, 0, k)
			}
		}
		n.RemindersOf = ev.Sequence
	}
	w := n.Window
	n.Announced = &w
	return n
}

// moved returns the window update seq moved, if it moved one.
func (m *Maintenance) moved(seq int64) (Window, bool) {
	if m == nil {
		return Window{}, false
	}
	for _, mv := range m.Moves {
		if mv.Sequence == seq {
			return mv.From, true
		}
	}
	return Window{}, false
}

// staleReminder returns why reminder job j no longer stands, given the
// maintenance's state now, or "" when it does.
func staleReminder(m *Maintenance, j *Job) string {
	r := j.Reminder
	switch {
	case m == nil:
		return "the incident is not a scheduled maintenance"
	case m.Cancelled:
		return "the maintenance was cancelled"
	case m.Status != incident.Scheduled:
		return fmt.Sprintf("the maintenance is %s", strings.ReplaceAll(string(m.Status), "_", " "))
	case !m.Window.equal(Window{Start: r.Start, End: r.End}):
		return fmt.Sprintf("the maintenance moved to %s – %s", m.Window.Start.UTC().Format(time.RFC3339), m.Window.End.UTC().Format(time.RFC3339))
	case m.RemindersOf != j.Sequence:
		return fmt.Sprintf("update %d announced the maintenance again; its own reminders stand", m.RemindersOf)
	}
	return ""
}

// worthReminding reports whether a reminder due at due, lead before the
// window, is worth parking at now: it must come at least a quarter of its
// lead time after the announcement (a reminder right after the
// announcement would repeat it), and within the retention of the update
// it renders.
func worthReminding(now, due time.Time, lead, retention time.Duration) bool {
	ahead := due.Sub(now)
	return ahead >= lead/4 && ahead < retention
}

// remind parks the reminders of a maintenance announcement (see
// reminders) and returns the number of jobs parked. Publishes are
// pipelined like the fan-out's batches.
func (f *fanout) remind(ctx context.Context, ev *incident.Event, streamSeq uint64, prio incident.Priority, targets []subscribers.Target, batches map[string]int) (int, error) {
	pub := newAsyncPublisher(ctx, f.js, f.d.cfg.FanoutMaxPending)
	if err := f.reminders(ev, streamSeq, prio, targets, batches, pub.add); err != nil {
		return pub.stored, err
	}
	return pub.stored, pub.flush()
}

// reminders passes to park the reminder jobs of a maintenance announcement:
// per channel and lead time, the update's targets of that channel in the
// batches of the update (the count the snapshot fixed), each batch a
// parked job due lead before the window. Lead times already too close are
// skipped (see worthReminding). The jobs' Nats-Msg-Ids derive from the
// reminder and the bucket, so a fan-out resumed inside the duplicate
// window parks nothing twice; beyond it, the copies meet at the lease and
// the log. Anything but an announcement (status scheduled, not cancelled,
// sent to someone) has none.
func (f *fanout) reminders(ev *incident.Event, streamSeq uint64, prio incident.Priority, targets []subscribers.Target, batches map[string]int, park func(*nats.Msg) error) error {
	if ev.Status != incident.Scheduled || ev.Cancelled || !ev.IsMaintenance() || len(targets) == 0 {
		return nil
	}
	d := f.d
	now := d.cfg.Now()
	w := Window{Start: ev.ScheduledFor.UTC(), End: ev.ScheduledUntil.UTC()}
	byChannel := map[string][]Target{}
	for _, t := range targets {
		byChannel[t.Channel] = append(byChannel[t.Channel], Target{SubscriberID: t.SubscriberID, EndpointID: t.EndpointID})
	}
	for _, ch := range channels.Names() {
		members, leads := byChannel[ch], d.cfg.Maintenance.Reminders[ch]
		if len(members) == 0 || len(leads) == 0 {
			continue
		}
		buckets := bucketize(members, batchCountOr(batches[ch], len(members), d.cfg.BatchSize), func(t Target) string { return t.SubscriberID })
		for _, lead := range leads {
			due := w.Start.Add(-lead)
			if !worthReminding(now, due, lead, d.cfg.IncidentRetention) {
				d.logger.Debug("maintenance reminder not parked: too close to the announcement, or past",
					"incident", ev.IncidentID, "event", ev.ID, "channel", ch, "lead", lead.String(), "due", due)
				continue
			}
			rid := reminderEventID(ev.ID, lead)
			for b, tg := range buckets {
				if len(tg) == 0 {
					continue
				}
				j := &Job{ID: reminderBatchID(rid, ch, b), Kind: KindReminder, EventID: rid, IncidentID: ev.IncidentID,
					Sequence: ev.Sequence, StreamSeq: streamSeq, Priority: prio, Channel: ch, Targets: tg,
					Reminder: &Reminder{Of: ev.ID, Lead: lead, Start: w.Start, End: w.End}}
				data, err := json.Marshal(j)
				if err != nil {
					return err
				}
				if err := park(&nats.Msg{Subject: parkedSubject(ch), Data: data, Header: nats.Header{
					hdrMsgID:   {j.ID},
					hdrDue:     {strconv.FormatInt(due.UnixMilli(), 10)},
					hdrAttempt: {"0"},
				}}); err != nil {
					return err
				}
			}
			d.maint.scheduled.WithLabelValues(ch).Add(float64(len(members)))
			d.logger.Info("maintenance reminders parked", "incident", ev.IncidentID, "event", ev.ID,
				"channel", ch, "lead", lead.String(), "due", due, "targets", len(members))
		}
	}
	return nil
}

// maintenance holds what the delivery loop needs about maintenance: the
// incident snapshots it reads to screen reminders and to render
// reschedulings, cached a moment, and its metric.
type maintenance struct {
	snaps *snapshots

	// states caches the snapshots read to screen reminders, for
	// stateTTL: a batch of reminders reads its incident's once.
	mu     sync.Mutex
	states map[string]cachedSnapshot
	// previous caches, per event id, the window an update moved (nil
	// when it moved none): fixed once the update is fanned out.
	previous *lru.Cache[string, *Window]
	reads    singleflight.Group

	scheduled *prometheus.CounterVec // by channel: reminder targets parked
}

// cachedSnapshot is a snapshot read at a (monotonic) time.
type cachedSnapshot struct {
	snap *Snapshot
	at   time.Time
}

// stateTTL is how long a snapshot read to screen reminders is used: a
// reminder that comes due within this much of a change of its maintenance
// (a move, a cancellation) may still go out, as if it had come due just
// before.
const stateTTL = 250 * time.Millisecond

// maxCachedStates bounds the snapshots cached for reminders.
const maxCachedStates = 1024

func newMaintenance(snaps *snapshots, reg prometheus.Registerer) (*maintenance, error) {
	prev, err := lru.New[string, *Window](512)
	if err != nil {
		return nil, err
	}
	m := &maintenance{snaps: snaps, states: map[string]cachedSnapshot{}, previous: prev,
		scheduled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "maintenance_reminders_parked_total",
			Help: "Targets of maintenance reminders parked by the fan-out (one per endpoint and lead time), by channel.",
		}, []string{"channel"}),
	}
	if reg != nil {
		if err := reg.Register(m.scheduled); err != nil {
			return nil, fmt.Errorf("dispatcher: metrics: %w", err)
		}
	}
	return m, nil
}

// errStaleSnapshot reports a snapshot read behind the update that asks for
// it (a replica lagging): the read is tried again later.
var errStaleSnapshot = errors.New("incident snapshot behind the update")

// snapshot returns the snapshot of incidentID, at least as recent as
// update seq, read at most stateTTL ago (nil when there is none).
func (m *maintenance) snapshot(ctx context.Context, incidentID string, seq int64) (*Snapshot, error) {
	m.mu.Lock()
	c, ok := m.states[incidentID]
	m.mu.Unlock()
	if ok && time.Since(c.at) < stateTTL && c.snap != nil && c.snap.LatestSeq >= seq {
		return c.snap, nil
	}
	v, err, _ := m.reads.Do("state\x00"+incidentID, func() (any, error) {
		snap, _, err := m.snaps.get(ctx, incidentID)
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		if len(m.states) >= maxCachedStates {
			clear(m.states)
		}
		m.states[incidentID] = cachedSnapshot{snap: snap, at: time.Now()}
		m.mu.Unlock()
		return snap, nil
	})
	if err != nil {
		return nil, err
	}
	snap := v.(*Snapshot)
	if snap != nil && snap.LatestSeq < seq {
		return nil, fmt.Errorf("%w: %s at update %d, job of update %d", errStaleSnapshot, incidentID, snap.LatestSeq, seq)
	}
	return snap, nil
}

// previousWindow returns the window update seq (event eventID) of
// incidentID moved, or nil.
func (m *maintenance) previousWindow(ctx context.Context, incidentID string, seq int64, eventID string) (*Window, error) {
	if w, ok := m.previous.Get(eventID); ok {
		return w, nil
	}
	v, err, _ := m.reads.Do("moved\x00"+eventID, func() (any, error) {
		snap, err := m.snapshot(ctx, incidentID, seq)
		if err != nil {
			return nil, err
		}
		var w *Window
		if snap != nil {
			if from, ok := snap.Maintenance.moved(seq); ok {
				w = &from
			}
		}
		m.previous.Add(eventID, w)
		return w, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Window), nil
}

// present prepares u, the update job j renders, for a maintenance: a
// reminder is presented as such, with the time left now; an announcement
// that moved the window as a rescheduling, with the window before. Errors
// reading the snapshot are transient (errTransientLoad).
func (d *Dispatcher) present(ctx context.Context, j *Job, u *templates.Update) error {
	ev := u.Event
	switch {
	case !ev.IsMaintenance():
		return nil
	case j.Kind == KindReminder:
		u.Reminder = &templates.Reminder{Lead: j.Reminder.Lead, Left: j.Reminder.Start.Sub(d.cfg.Now())}
		return nil
	case ev.Status != incident.Scheduled || ev.Cancelled:
		return nil
	}
	prev, err := d.maint.previousWindow(ctx, j.IncidentID, j.Sequence, ev.ID)
	if err != nil {
		return fmt.Errorf("%w: %w", errTransientLoad, err)
	}
	if prev != nil {
		u.Previous = &templates.Window{Start: prev.Start, End: prev.End}
	}
	return nil
}

// screenReminder is the screen stage of a reminder, after the checks every
// target gets: a reminder whose maintenance moved, was cancelled, has
// started or was announced again is skipped (superseded); one that can no
// longer arrive before the window, now or after the endpoint's quiet
// hours, is skipped too (expired: never sent late); one whose endpoint no
// longer takes the maintenance (its preferences changed since the
// announcement) is skipped (unsubscribed); in quiet hours that end in time
// it is deferred to their end, as updates are (P1 excepted).
func (t *task) screenReminder() bool {
	dl, d, j := t.dl, t.dl.d, t.m.job
	snap, err := d.maint.snapshot(dl.sendCtx, j.IncidentID, j.Sequence)
	if err != nil {
		return t.retryInfra(componentSnapshots, err)
	}
	d.health.ok(componentSnapshots)
	var m *Maintenance
	var components []string
	if snap != nil {
		m, components = snap.Maintenance, snap.Components
	}
	if reason := staleReminder(m, j); reason != "" {
		t.skip(Superseded, reason)
		return false
	}
	now, start := d.cfg.Now(), j.Reminder.Start
	if !now.Before(start) {
		t.skip(Expired, "the maintenance began at "+start.Format(time.RFC3339))
		return false
	}
	q := subscribers.Query{Components: components, Priority: j.Priority, Status: incident.Scheduled, IncidentID: j.IncidentID, Sequence: j.Sequence}
	if !d.index.Matches(q, t.target.SubscriberID, t.target.EndpointID) {
		t.skip(Unsubscribed, "the endpoint's preferences no longer take this maintenance")
		return false
	}
	if t.ep.QuietHours != nil && j.Priority != incident.P1 {
		if quiet, end := t.ep.QuietHours.Window(now, t.loc); quiet {
			wait := end.Sub(now) + time.Duration(d.cfg.Rand()*float64(time.Minute))
			if !now.Add(wait).Before(start) {
				t.skip(Expired, "quiet hours until "+end.UTC().Format(time.RFC3339)+" last past the maintenance's start")
				return false
			}
			t.deferFor("quiet hours", wait, true)
			return false
		}
	}
	t.next = (*task).capSMS
	return true
}
