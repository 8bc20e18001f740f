package templates

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/heraldhq/herald/incident"
)

// Window is the time span of a scheduled maintenance.
type Window struct {
	// Start and End are when the maintenance begins and is planned to end.
	Start, End time.Time
}

// Reminder presents the update that announced a maintenance as a reminder
// of it, sent some time before its window (see [Update.Reminder]).
type Reminder struct {
	// Lead is the configured lead time: how long before the window's start
	// the reminder was due. The webhook payload carries it
	// (data.reminder.lead_seconds).
	Lead time.Duration
	// Left is how long remains before the window starts as the reminder is
	// rendered (it may go out later than due: quiet hours, retries).
	// Messages say it in words, rounded ("in 23 hours"). Zero or negative
	// means Lead.
	Left time.Duration
}

// WebhookTypeReminder is the type of maintenance-reminder payloads.
const WebhookTypeReminder = "maintenance.reminder"

// errBadVariant reports a reminder or rescheduling asked of an update that
// cannot be presented so.
var errBadVariant = errors.New("a reminder or a rescheduling needs a maintenance update with its window")

// variant is how an update is presented: as itself, as a reminder of the
// maintenance it announced, or as the rescheduling of that maintenance. It
// is part of the renderings' cache key.
type variant struct {
	// lead and left are a reminder's lead time and rounded time left
	// (zero: not a reminder).
	lead, left time.Duration
	// prevStart and prevEnd are the window a rescheduling moved, in Unix
	// nanoseconds (zero: not a rescheduling).
	prevStart, prevEnd int64
}

// variantOf checks the presentation u asks for and returns it.
func variantOf(u Update) (variant, error) {
	var v variant
	if u.Reminder == nil && u.Previous == nil {
		return v, nil
	}
	ev := u.Event
	if ev.ScheduledFor == nil || ev.ScheduledUntil == nil || ev.Cancelled || (u.Reminder != nil && u.Previous != nil) {
		return v, errBadVariant
	}
	if rm := u.Reminder; rm != nil {
		if rm.Lead <= 0 {
			return v, errors.New("a reminder needs a positive lead time")
		}
		left := rm.Left
		if left <= 0 {
			left = rm.Lead
		}
		v.lead, v.left = rm.Lead, roundLeft(left)
	}
	if pw := u.Previous; pw != nil {
		if !pw.End.After(pw.Start) {
			return v, errors.New("the previous window must end after it starts")
		}
		v.prevStart, v.prevEnd = pw.Start.UnixNano(), pw.End.UnixNano()
	}
	return v, nil
}

// reminder reports whether v presents a reminder.
func (v variant) reminder() bool { return v.lead > 0 }

// rescheduled reports whether v presents a rescheduling.
func (v variant) rescheduled() bool { return v.prevStart != 0 || v.prevEnd != 0 }

// previous returns the window a rescheduling moved.
func (v variant) previous() Window {
	return Window{Start: time.Unix(0, v.prevStart).UTC(), End: time.Unix(0, v.prevEnd).UTC()}
}

// with returns p presented as v: p itself for the plain presentation,
// else a shallow copy (the texts and documents stay shared).
func (p *prepared) with(v variant) *prepared {
	if v == (variant{}) {
		return p
	}
	c := *p
	c.variant = v
	return &c
}

// roundLeft rounds the time left before a window to what a message says:
// whole hours from two hours on, five minutes from ten minutes on, whole
// minutes, then seconds (at least one).
func roundLeft(d time.Duration) time.Duration {
	switch {
	case d >= 2*time.Hour:
		return d.Round(time.Hour)
	case d >= 10*time.Minute:
		return d.Round(5 * time.Minute)
	case d >= time.Minute:
		return d.Round(time.Minute)
	}
	return max(d.Round(time.Second), time.Second)
}

// durationText writes d in words in the catalog's language: days and
// hours from two days on ("3 days", "2 days and 6 hours"), else hours,
// minutes and seconds ("24 hours", "1 hour and 30 minutes"); units that
// are zero are left out.
func durationText(d time.Duration, cat *catalog) string {
	var parts []string
	add := func(n time.Duration, unit string) {
		if n <= 0 {
			return
		}
		key := "lead." + unit + "_other"
		if n == 1 {
			key = "lead." + unit + "_one"
		}
		parts = append(parts, cat.must(key, "n", strconv.FormatInt(int64(n), 10)))
	}
	const day = 24 * time.Hour
	if d >= 2*day {
		add(d/day, "day")
		d %= day
	}
	add(d/time.Hour, "hour")
	add(d%time.Hour/time.Minute, "minute")
	add(d%time.Minute/time.Second, "second")
	if len(parts) == 0 {
		add(1, "second")
	}
	return joinList(parts, cat)
}

// windowText writes a maintenance window in the catalog's words and the
// reader's zone: "May 6, 2025, 10:00 PM to 11:00 PM (CEST)" within a day,
// both dates in full otherwise.
func windowText(w Window, loc *time.Location, cat *catalog) string {
	if loc == nil {
		loc = time.UTC
	}
	s, e := w.Start.In(loc), w.End.In(loc)
	zone := zoneName(s)
	if z := zoneName(e); z != zone {
		zone += "/" + z
	}
	sy, sm, sd := s.Date()
	ey, em, ed := e.Date()
	if sy == ey && sm == em && sd == ed {
		layout := cat.must("locale.time")
		return cat.must("maintenance.same_day", "date", s.Format(cat.must("locale.date")),
			"start", s.Format(layout), "end", e.Format(layout), "zone", zone)
	}
	layout := cat.must("locale.datetime")
	return cat.must("maintenance.days", "start", s.Format(layout), "end", e.Format(layout), "zone", zone)
}

// maintenanceView fills the view's maintenance fields: the window, and
// the wording of a reminder, a rescheduling or a cancellation, which
// replaces the status label and summary of the update.
func (r *Renderer) maintenanceView(v *view, p *prepared, loc *time.Location) {
	ev, cat := p.ev, v.cat
	if ev.ScheduledFor == nil || ev.ScheduledUntil == nil {
		return
	}
	v.Maintenance = true
	v.Window = windowText(Window{Start: *ev.ScheduledFor, End: *ev.ScheduledUntil}, loc, cat)
	if ev.Status == incident.Scheduled || ev.Cancelled {
		// Not started (a status page's started_at is when the maintenance
		// was created): the window says when it starts.
		v.Started = ""
	}
	switch vr := p.variant; {
	case vr.reminder():
		v.Reminder = true
		v.Left = durationText(vr.left, cat)
		v.StatusLabel = cat.must("maintenance.reminder", "left", v.Left)
		v.Summary = cat.must("maintenance.reminder_summary", "components", v.ComponentList, "left", v.Left)
		v.Emoji = ":alarm_clock:"
	case vr.rescheduled():
		v.Rescheduled = true
		v.PreviousWindow = windowText(vr.previous(), loc, cat)
		v.StatusLabel = cat.must("maintenance.rescheduled")
		v.Summary = cat.must("maintenance.rescheduled_summary", "components", v.ComponentList)
		v.Color, v.Emoji = "#bc4c00", ":spiral_calendar_pad:"
	case ev.Cancelled:
		v.Cancelled = true
		v.StatusLabel = cat.must("maintenance.cancelled")
		v.Summary = cat.must("maintenance.cancelled_summary", "components", v.ComponentList)
		v.Color, v.Emoji = "#57606a", ":no_entry_sign:"
	}
}

// headline returns the label that heads a message about p in cat's
// language: the status, or the wording of a reminder, a rescheduling or a
// cancellation.
func headline(p *prepared, cat *catalog) string {
	switch vr := p.variant; {
	case vr.reminder():
		return cat.must("maintenance.reminder", "left", durationText(vr.left, cat))
	case vr.rescheduled():
		return cat.must("maintenance.rescheduled")
	case p.ev.Cancelled:
		return cat.must("maintenance.cancelled")
	}
	return cat.must("status." + string(p.ev.Status))
}

// mailType is the Feedback-ID mail type of an email about p:
// "maintenance-reminder", "maintenance-rescheduled",
// "maintenance-cancelled", else "incident-<status>".
func mailType(p *prepared) string {
	switch vr := p.variant; {
	case vr.reminder():
		return "maintenance-reminder"
	case vr.rescheduled():
		return "maintenance-rescheduled"
	case p.ev.Cancelled:
		return "maintenance-cancelled"
	}
	return "incident-" + string(p.ev.Status)
}

// webhookMaintenance adds to a webhook payload's data what a reminder or a
// rescheduling adds, and returns the payload's type and timestamp.
func webhookMaintenance(d *webhookData, p *prepared) (typ, timestamp string) {
	typ, timestamp = WebhookTypeUpdate, d.PublishedAt
	switch vr := p.variant; {
	case vr.reminder():
		d.Reminder = &webhookReminder{LeadSeconds: int64(vr.lead / time.Second)}
		// The time the reminder was due: the same for every retry.
		typ, timestamp = WebhookTypeReminder, p.ev.ScheduledFor.Add(-vr.lead).UTC().Format(time.RFC3339)
	case vr.rescheduled():
		prev := vr.previous()
		from, until := prev.Start.Format(time.RFC3339), prev.End.Format(time.RFC3339)
		d.Rescheduled, d.PreviousScheduledFor, d.PreviousScheduledUntil = true, &from, &until
	}
	return typ, timestamp
}

// webhookReminder is data.reminder of a maintenance-reminder payload.
type webhookReminder struct {
	// LeadSeconds is how long before the window's start the reminder was
	// due.
	LeadSeconds int64 `json:"lead_seconds"`
}

// selfTestMaintenance renders a maintenance, its reminder, its
// rescheduling and its cancellation in every locale and channel, without
// caching, so that a template or catalog override that breaks them fails
// at start.
func (r *Renderer) selfTestMaintenance(at time.Time) error {
	from, until := at.Add(26*time.Hour), at.Add(28*time.Hour)
	ev := &incident.Event{ID: "SAMPLE-3:2", IncidentID: "SAMPLE-3", Sequence: 2, Status: incident.Scheduled,
		Title: incident.PlainText("Sample"), Body: incident.PlainText("Sample"), ScheduledFor: &from, ScheduledUntil: &until}
	cancelled := *ev
	cancelled.Status, cancelled.Cancelled = incident.Completed, true
	p, err := r.prepareChecked(Update{Event: ev, AcceptedAt: at}, prepKey{id: ev.ID})
	if err != nil {
		return err
	}
	pc, err := r.prepareChecked(Update{Event: &cancelled, AcceptedAt: at}, prepKey{id: ev.ID})
	if err != nil {
		return err
	}
	shown := []*prepared{
		p.with(variant{lead: 24 * time.Hour, left: 90 * time.Minute}),
		p.with(variant{prevStart: at.UnixNano(), prevEnd: until.UnixNano()}),
		pc,
	}
	for _, loc := range r.locales.names {
		for _, sp := range shown {
			for _, ch := range []string{ChannelEmail, ChannelSMS, ChannelSlack, ChannelWebhook} {
				if _, err := r.renderChannel(sp, langPair{frame: loc, text: loc}, ch, time.UTC, hasName|hasUnsubscribe, false); err != nil {
					return fmt.Errorf("locale %s, channel %s, maintenance %s: %w", loc, ch, mailType(sp), err)
				}
			}
		}
	}
	return nil
}
