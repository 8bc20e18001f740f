package dispatcher

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"
	"github.com/nats-io/nats.go"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/internal/mailpittest"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// runningClock is a clock for Config.Now that runs at the real pace from
// an instant the test chooses: the due times of parked jobs (compared with
// it) and JetStream's redelivery delays (real time) agree, while the time
// of day (quiet hours) and the date are the test's. Maintenance tests use
// lead times of seconds, so that no test waits for hours.
type runningClock struct {
	mu       sync.Mutex
	base, t0 time.Time
}

func runFrom(base time.Time) *runningClock { return &runningClock{base: base, t0: time.Now()} }

// restart sets the clock to base now (once Herald is up, for a test that
// needs the time of day to the second).
func (c *runningClock) restart(base time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base, c.t0 = base, time.Now()
}

// Now is the clock's time.
func (c *runningClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.t0))
}

// real returns the real time at which the clock shows t.
func (c *runningClock) real(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t0.Add(t.Sub(c.base))
}

// window returns a maintenance window that starts in (by the clock, to
// the second) and lasts an hour.
func (c *runningClock) window(in time.Duration) (time.Time, time.Time) {
	start := c.Now().Add(in).Truncate(time.Second)
	return start, start.Add(time.Hour)
}

// reminderConfig sets the clock (and no jitter) and the reminders' lead
// times per channel.
func reminderConfig(clock *runningClock, leads map[string][]time.Duration) func(*Config) {
	return func(c *Config) {
		c.Now, c.Rand = clock.Now, noJitter
		c.Maintenance.Reminders = leads
	}
}

// maintenanceEvent builds an update of maintenance incidentID with its
// window.
func maintenanceEvent(incidentID string, seq int, status string, start, end time.Time, extra ...string) string {
	return event(incidentID, seq, status, append([]string{
		"scheduled_for", start.UTC().Format(time.RFC3339), "scheduled_until", end.UTC().Format(time.RFC3339)}, extra...)...)
}

// reminderID is the delivery id of the reminder, lead before its window,
// of announcement eventID to an endpoint.
func reminderID(eventID string, lead time.Duration, sub, ep string) string {
	return DeliveryID(reminderEventID(eventID, lead), sub, ep)
}

// hookPayload is what the tests read of a webhook payload.
type hookPayload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		EventID        string     `json:"event_id"`
		Sequence       int64      `json:"sequence"`
		Status         string     `json:"status"`
		Cancelled      bool       `json:"cancelled"`
		Rescheduled    bool       `json:"rescheduled"`
		ScheduledFor   time.Time  `json:"scheduled_for"`
		ScheduledUntil time.Time  `json:"scheduled_until"`
		PreviousFor    *time.Time `json:"previous_scheduled_for"`
		PreviousUntil  *time.Time `json:"previous_scheduled_until"`
		Reminder       *struct {
			LeadSeconds int64 `json:"lead_seconds"`
		} `json:"reminder"`
	} `json:"data"`
}

// lead is the reminder's lead time, 0 for an update.
func (p hookPayload) lead() time.Duration {
	if p.Data.Reminder == nil {
		return 0
	}
	return time.Duration(p.Data.Reminder.LeadSeconds) * time.Second
}

// payloads decodes the requests received on path, checking each
// signature.
func (b *testBundle) payloads(path string) ([]hookPayload, []hit) {
	b.t.Helper()
	hits := b.recv.hitsFor(path)
	out := make([]hookPayload, len(hits))
	for i, h := range hits {
		if h.verified != nil {
			b.t.Errorf("%s request %d: signature does not verify: %v", path, i+1, h.verified)
		}
		if err := json.Unmarshal(h.body, &out[i]); err != nil {
			b.t.Fatalf("%s request %d: %v", path, i+1, err)
		}
	}
	return out, hits
}

// describe writes payloads short, for failure messages.
func describe(ps []hookPayload) string {
	var s []string
	for _, p := range ps {
		d := p.Type + " " + p.Data.EventID + " " + p.Data.Status
		if l := p.lead(); l > 0 {
			d += " lead " + l.String()
		}
		s = append(s, d)
	}
	return strings.Join(s, "; ")
}

// byLead sorts the payloads ps[from:to] (and their hits) by lead time,
// longest first. Reminders of one window are due their leads apart, but a
// receiver may see two at once in either order (both came due together
// after a restart, or one was retried): their payloads say which is
// which, not their arrival.
func byLead(ps []hookPayload, hits []hit, from, to int) {
	if to > len(ps) || to > len(hits) {
		return
	}
	idx := make([]int, to-from)
	for i := range idx {
		idx[i] = from + i
	}
	sort.SliceStable(idx, func(a, b int) bool { return ps[idx[a]].lead() > ps[idx[b]].lead() })
	sp, sh := make([]hookPayload, len(idx)), make([]hit, len(idx))
	for i, k := range idx {
		sp[i], sh[i] = ps[k], hits[k]
	}
	copy(ps[from:to], sp)
	copy(hits[from:to], sh)
}

// waitParkedEmpty waits until channel holds no parked job: every reminder
// and deferral came due and was dealt with.
func (b *testBundle) waitParkedEmpty(channel string) {
	b.t.Helper()
	b.waitFor("no "+channel+" job parked", 30*time.Second, func() bool {
		info := b.parked(channel)
		return info.NumPending == 0 && info.NumAckPending == 0
	})
}

// recordOf returns the latest record of a delivery, or fails.
func (b *testBundle) recordOf(sub, id string) Record {
	b.t.Helper()
	recs := b.delivery(sub, id)
	if len(recs) == 0 {
		b.t.Fatalf("no record of %s", id)
	}
	return recs[len(recs)-1]
}

// calendarOf parses the .ics attached to a raw email with the iCalendar
// library.
func calendarOf(t testing.TB, raw []byte) (*ics.Calendar, *ics.VEvent) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	data := findPart(t, m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body, "text/calendar")
	if data == nil {
		t.Fatalf("no text/calendar part in:\n%s", raw)
	}
	cal, err := ics.ParseCalendar(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the .ics does not parse: %v\n%s", err, data)
	}
	if evs := cal.Events(); len(evs) == 1 {
		return cal, evs[0]
	}
	t.Fatalf("%d events in the .ics, want 1", len(cal.Events()))
	return nil, nil
}

// findPart returns the decoded content of the first part of media type
// want in a MIME entity, or nil.
func findPart(t testing.TB, contentType, encoding string, body io.Reader, want string) []byte {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return nil
			}
			if data := findPart(t, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, want); data != nil {
				return data
			}
		}
	}
	if mt != want {
		return nil
	}
	var r io.Reader = body
	switch strings.ToLower(encoding) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body)
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// subjectOf returns the decoded Subject of a raw email.
func subjectOf(t testing.TB, raw []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	s, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func icsProp(e *ics.VEvent, p ics.ComponentProperty) string {
	if v := e.GetProperty(p); v != nil {
		return v.Value
	}
	return ""
}

func icsMethod(cal *ics.Calendar) string {
	for _, p := range cal.CalendarProperties {
		if p.IANAToken == string(ics.PropertyMethod) {
			return p.Value
		}
	}
	return ""
}

// checkCalendar checks an email's .ics: the maintenance's one UID, the
// update's SEQUENCE, the window, the method.
func checkCalendar(t testing.TB, what string, raw []byte, uid, seq, method string, start, end time.Time) {
	t.Helper()
	cal, e := calendarOf(t, raw)
	s, err1 := e.GetStartAt()
	f, err2 := e.GetEndAt()
	if err1 != nil || err2 != nil || e.Id() != uid || icsProp(e, ics.ComponentPropertySequence) != seq ||
		icsMethod(cal) != method || !s.Equal(start) || !f.Equal(end) {
		t.Errorf("%s: event %s sequence %s method %s from %v to %v (%v %v), want %s %s %s from %v to %v",
			what, e.Id(), icsProp(e, ics.ComponentPropertySequence), icsMethod(cal), s, f, err1, err2, uid, seq, method, start, end)
	}
}

// outboxEmail returns the .eml the email outbox wrote for delivery id.
func (b *testBundle) outboxEmail(id string) []byte {
	b.t.Helper()
	files, _ := filepath.Glob(filepath.Join(b.outbox, channels.Email, "*", channels.EscapeID(id)+".eml"))
	if len(files) != 1 {
		b.t.Fatalf("%d outbox files for %s", len(files), id)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		b.t.Fatal(err)
	}
	return data
}

// testLeads are the reminders' lead times of the maintenance tests on
// webhooks and email.
var testLeads = []time.Duration{8 * time.Second, 4 * time.Second}

// announcedMaintenance runs Herald with reminders testLeads ahead on
// webhooks and email, for a webhook subscriber m_hook and mailSub (email
// endpoint "mail"), and announces maintenance incidentID, starting in `in`;
// it returns once the webhook has the announcement, with the clock and
// the window.
func announcedMaintenance(t *testing.T, incidentID string, mailSub *subscribers.Subscriber, in time.Duration) (*testBundle, *runningClock, time.Time, time.Time) {
	t.Helper()
	clock := runFrom(time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC))
	b := setup(t, bundleOpts{cfg: reminderConfig(clock, map[string][]time.Duration{channels.Webhook: testLeads, channels.Email: testLeads})})
	b.putSubscriber(b.webhookSubscriber("m_hook", "/hook"))
	b.putSubscriber(mailSub)
	start, end := clock.window(in)
	b.publish(maintenanceEvent(incidentID, 1, "scheduled", start, end))
	b.waitFor("the announcement", 10*time.Second, func() bool { return b.recv.delivered("/hook") == 1 })
	return b, clock, start, end
}

// waitSuperseded waits until every reminder of announcement eventID to
// m_hook and m_mail came due and was skipped, each with a single record,
// and returns those records.
func (b *testBundle) waitSuperseded(eventID string) []Record {
	b.t.Helper()
	var out []Record
	for _, sub := range [][2]string{{"m_hook", "wh"}, {"m_mail", "mail"}} {
		for _, lead := range testLeads {
			id := reminderID(eventID, lead, sub[0], sub[1])
			b.waitFor("the reminder to be skipped", 30*time.Second, func() bool { return b.lastOutcome(sub[0], id) == Superseded })
			recs := b.delivery(sub[0], id)
			if len(recs) != 1 {
				b.t.Errorf("reminder %s of %s: records %+v", lead, sub[0], recs)
			}
			out = append(out, recs...)
		}
	}
	return out
}

// TestMaintenanceLifecycle: a maintenance is announced, reminded at each
// lead time (never before it is due), started and completed; a webhook
// receives exactly those five payloads in that order, signed, the
// reminders under their own delivery ids; a real SMTP server (Mailpit)
// receives five emails whose .ics all parse, with the maintenance's UID and
// the SEQUENCE of the update they show; nothing is left parked.
func TestMaintenanceLifecycle(t *testing.T) {
	t.Parallel()
	mp := mailpittest.Start(t, mailpittest.Options{})
	clock := runFrom(time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC))
	b := setup(t, bundleOpts{
		cfg: func(c *Config) {
			reminderConfig(clock, map[string][]time.Duration{channels.Webhook: testLeads, channels.Email: testLeads})(c)
			c.PublicURL = testPublicURL
		},
		templates: func(c *templates.Config) { c.CalendarOrganizer = testFrom },
		channels:  map[string]channels.Channel{channels.Email: newEmailChannel(t, mp.Host, mp.SMTPPort, 2)},
	})
	hook := b.webhookSubscriber("m_hook", "/hook")
	box := emailSubscriber("m_mail", "en-GB", "Europe/London", "Acme", "ops@acme.example")
	b.putSubscriber(hook)
	b.putSubscriber(box)

	start, end := clock.window(12 * time.Second)
	b.publish(maintenanceEvent("MNT-1", 1, "scheduled", start, end))
	b.waitFor("the announcement and both reminders", 40*time.Second, func() bool { return b.recv.delivered("/hook") == 3 })
	// Jobs of two updates are delivered concurrently, so a receiver may see
	// them in either order (the payload's sequence orders them); the test
	// waits for each so that the order it checks is the order of events.
	b.publish(maintenanceEvent("MNT-1", 2, "in_progress", start, end))
	b.waitFor("started", 20*time.Second, func() bool { return b.recv.delivered("/hook") == 4 })
	b.publish(maintenanceEvent("MNT-1", 3, "completed", start, end))
	b.waitFor("completed", 20*time.Second, func() bool { return b.recv.delivered("/hook") == 5 })

	ps, hits := b.payloads("/hook")
	byLead(ps, hits, 1, 3)
	want := []struct {
		typ, event, status string
		lead               time.Duration
		id                 string
	}{
		{"incident.updated", "MNT-1:1", "scheduled", 0, DeliveryID("MNT-1:1", "m_hook", "wh")},
		{"maintenance.reminder", "MNT-1:1", "scheduled", 8 * time.Second, reminderID("MNT-1:1", 8*time.Second, "m_hook", "wh")},
		{"maintenance.reminder", "MNT-1:1", "scheduled", 4 * time.Second, reminderID("MNT-1:1", 4*time.Second, "m_hook", "wh")},
		{"incident.updated", "MNT-1:2", "in_progress", 0, DeliveryID("MNT-1:2", "m_hook", "wh")},
		{"incident.updated", "MNT-1:3", "completed", 0, DeliveryID("MNT-1:3", "m_hook", "wh")},
	}
	if len(ps) != len(want) {
		t.Fatalf("webhook got %s", describe(ps))
	}
	for i, w := range want {
		p := ps[i]
		if p.Type != w.typ || p.Data.EventID != w.event || p.Data.Status != w.status || p.lead() != w.lead || hits[i].id != w.id ||
			!p.Data.ScheduledFor.Equal(start) || !p.Data.ScheduledUntil.Equal(end) {
			t.Errorf("payload %d: %s (webhook-id %s), want %+v", i+1, describe(ps[i:i+1]), hits[i].id, w)
		}
		if w.lead > 0 {
			due := start.Add(-w.lead)
			if !p.Timestamp.Equal(due) {
				t.Errorf("reminder %s stamped %v, want its due time %v", w.lead, p.Timestamp, due)
			}
			if early := clock.real(due).Sub(hits[i].at); early > 5*time.Millisecond {
				t.Errorf("reminder %s arrived %v before it was due", w.lead, early)
			}
			rec := b.recordOf("m_hook", w.id)
			if rec.Kind != KindReminder || rec.EventID != reminderEventID("MNT-1:1", w.lead) || rec.Outcome != Delivered || rec.Sequence != 1 {
				t.Errorf("reminder %s: record %+v", w.lead, rec)
			}
		}
	}

	// The emails, as Mailpit received them.
	ids := []string{DeliveryID("MNT-1:1", "m_mail", "mail"), reminderID("MNT-1:1", 8*time.Second, "m_mail", "mail"),
		reminderID("MNT-1:1", 4*time.Second, "m_mail", "mail"), DeliveryID("MNT-1:2", "m_mail", "mail"), DeliveryID("MNT-1:3", "m_mail", "mail")}
	b.waitFor("the five emails", 20*time.Second, func() bool {
		for _, id := range ids {
			if b.lastOutcome("m_mail", id) != Delivered {
				return false
			}
		}
		return true
	})
	subjects := []string{"[Scheduled maintenance] Oney outage", "[Maintenance in ", "[Maintenance in ", "[Maintenance in progress] Oney outage", "[Maintenance completed] Oney outage"}
	for i, id := range ids {
		rec := b.recordOf("m_mail", id)
		m := mp.Message(t, rec.ProviderID)
		if !strings.HasPrefix(m.Subject, subjects[i]) {
			t.Errorf("email %d: subject %q, want %q…", i+1, m.Subject, subjects[i])
		}
		seq := []string{"1", "1", "1", "2", "3"}[i]
		checkCalendar(t, "email "+seq, mp.Raw(t, m.ID), "MNT-1@herald.example", seq, "PUBLISH", start, end)
	}
	b.waitParkedEmpty(channels.Webhook)
	b.waitParkedEmpty(channels.Email)
	if n := len(b.recv.hitsFor("/hook")); n != 5 {
		t.Errorf("webhook got %d requests, want 5", n)
	}
}

// TestMaintenanceMovedWindow: a later announcement moving the window
// sends a rescheduling (the webhook says so, with the previous window; the
// email's .ics keeps the UID with a higher SEQUENCE and the new window);
// the reminders of the old window come due and are skipped, recorded
// superseded, never sent; those of the new window go out.
func TestMaintenanceMovedWindow(t *testing.T) {
	t.Parallel()
	b, clock, start1, end1 := announcedMaintenance(t, "MNT-2", emailSubscriber("m_mail", "fr-FR", "Europe/Paris", "Dupont", "ops@dupont.example"), 14*time.Second)
	start2, end2 := start1.Add(10*time.Second), end1.Add(2*time.Hour)
	b.publish(maintenanceEvent("MNT-2", 2, "scheduled", start2, end2))
	for _, rec := range b.waitSuperseded("MNT-2:1") {
		if !strings.Contains(rec.Reason, "moved to "+start2.Format(time.RFC3339)) {
			t.Errorf("old reminder: %+v", rec)
		}
	}
	b.waitFor("the new reminders", 30*time.Second, func() bool { return b.recv.delivered("/hook") == 4 })
	b.waitParkedEmpty(channels.Webhook)
	b.waitParkedEmpty(channels.Email)

	ps, hits := b.payloads("/hook")
	if len(ps) != 4 {
		t.Fatalf("webhook got %s", describe(ps))
	}
	byLead(ps, hits, 2, 4)
	if p := ps[1]; p.Type != "incident.updated" || p.Data.EventID != "MNT-2:2" || !p.Data.Rescheduled ||
		p.Data.PreviousFor == nil || !p.Data.PreviousFor.Equal(start1) || p.Data.PreviousUntil == nil || !p.Data.PreviousUntil.Equal(end1) ||
		!p.Data.ScheduledFor.Equal(start2) || !p.Data.ScheduledUntil.Equal(end2) {
		t.Errorf("the rescheduling: %s %+v", describe(ps[1:2]), p.Data)
	}
	if ps[0].Data.Rescheduled {
		t.Error("the first announcement says rescheduled")
	}
	for i, lead := range testLeads {
		p, h := ps[2+i], hits[2+i]
		if p.Type != templates.WebhookTypeReminder || p.Data.EventID != "MNT-2:2" || p.lead() != lead || !p.Data.ScheduledFor.Equal(start2) ||
			h.id != reminderID("MNT-2:2", lead, "m_hook", "wh") {
			t.Errorf("new reminder %d: %s", i+1, describe(ps[2+i:3+i]))
		}
		if early := clock.real(start2.Add(-lead)).Sub(h.at); early > 5*time.Millisecond {
			t.Errorf("new reminder %s arrived %v early", lead, early)
		}
	}

	// The emails' calendar events: one UID, the SEQUENCE of each update.
	const uid = "MNT-2@herald.example"
	checkCalendar(t, "announcement", b.outboxEmail(DeliveryID("MNT-2:1", "m_mail", "mail")), uid, "1", "PUBLISH", start1, end1)
	moved := b.outboxEmail(DeliveryID("MNT-2:2", "m_mail", "mail"))
	checkCalendar(t, "rescheduling", moved, uid, "2", "PUBLISH", start2, end2)
	if s := subjectOf(t, moved); s != "[Maintenance reprogrammée] Panne Oney" {
		t.Errorf("the rescheduling email's subject: %q", s)
	}
	for _, lead := range testLeads {
		b.waitFor("the new email reminder", 10*time.Second, func() bool {
			return b.lastOutcome("m_mail", reminderID("MNT-2:2", lead, "m_mail", "mail")) == Outboxed
		})
		checkCalendar(t, "reminder "+lead.String(), b.outboxEmail(reminderID("MNT-2:2", lead, "m_mail", "mail")), uid, "2", "PUBLISH", start2, end2)
	}
}

// TestMaintenanceCancelled: a cancelled maintenance sends "cancelled"
// (the webhook's cancelled flag; the email's .ics cancels the event) and
// no reminder after it: each comes due and is recorded superseded.
func TestMaintenanceCancelled(t *testing.T) {
	t.Parallel()
	b, _, start, end := announcedMaintenance(t, "MNT-3", emailSubscriber("m_mail", "it-IT", "Europe/Rome", "Trattoria", "ops@trattoria.example"), 12*time.Second)
	b.publish(maintenanceEvent("MNT-3", 2, "completed", start, end, "cancelled", "true"))
	b.waitFor("the cancellation", 10*time.Second, func() bool { return b.recv.delivered("/hook") == 2 })
	for _, rec := range b.waitSuperseded("MNT-3:1") {
		if rec.Reason != "the maintenance was cancelled" {
			t.Errorf("reminder: %+v", rec)
		}
	}
	b.waitParkedEmpty(channels.Webhook)
	b.waitParkedEmpty(channels.Email)
	ps, _ := b.payloads("/hook")
	if len(ps) != 2 || !ps[1].Data.Cancelled || ps[1].Data.Status != "completed" || ps[1].Type != "incident.updated" {
		t.Fatalf("webhook got %s", describe(ps))
	}
	b.waitFor("the cancellation email", 10*time.Second, func() bool {
		return b.lastOutcome("m_mail", DeliveryID("MNT-3:2", "m_mail", "mail")) == Outboxed
	})
	raw := b.outboxEmail(DeliveryID("MNT-3:2", "m_mail", "mail"))
	checkCalendar(t, "cancellation", raw, "MNT-3@herald.example", "2", "CANCEL", start, end)
	if _, e := calendarOf(t, raw); icsProp(e, ics.ComponentPropertyStatus) != "CANCELLED" {
		t.Errorf("the cancellation's event is %s", icsProp(e, ics.ComponentPropertyStatus))
	}
}

// TestMaintenanceRemindersOnceAcrossProcesses: two Herald processes on
// one nats-server share the parked reminders; with a second copy of every
// reminder parked as well (as a fan-out resumed past the duplicate window
// would park them: the same delivery ids under other message ids), each
// endpoint gets each reminder once.
func TestMaintenanceRemindersOnceAcrossProcesses(t *testing.T) {
	t.Parallel()
	clock := runFrom(time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC))
	cfg := reminderConfig(clock, map[string][]time.Duration{channels.Webhook: testLeads})
	b := setup(t, bundleOpts{cfg: func(c *Config) { cfg(c); c.BatchSize = 8 }})
	peer := setup(t, bundleOpts{server: b.ns, cfg: func(c *Config) { cfg(c); c.BatchSize = 8 }})
	const n = 30
	var paths []string
	for i := range n {
		id := fmt.Sprintf("m%02d", i)
		paths = append(paths, "/"+id)
		b.putSubscriber(b.webhookSubscriber(id, "/"+id))
		peer.waitFor("the peer to see "+id, 5*time.Second, func() bool { _, ok := peer.d.index.Revision(id); return ok })
	}
	start, end := clock.window(16 * time.Second)
	ev := maintenanceEvent("MNT-4", 1, "scheduled", start, end)
	res := b.publish(ev)
	b.waitFor("the announcements", 20*time.Second, func() bool {
		for _, p := range paths {
			if b.recv.delivered(p) != 1 {
				return false
			}
		}
		return true
	})

	// Park a second copy of every reminder.
	e, err := incident.Decode([]byte(ev), 0)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.d.Snapshot(b.ctx, "MNT-4")
	if err != nil || snap == nil || snap.update(1) == nil {
		t.Fatalf("snapshot %+v: %v", snap, err)
	}
	targets := b.d.index.Audience(subscribers.Query{Components: e.Components, Priority: incident.P3, Status: e.Status, IncidentID: e.IncidentID, Sequence: e.Sequence})
	fo, err := newFanout(peer.d)
	if err != nil {
		t.Fatal(err)
	}
	copies := 0
	if err := fo.reminders(e, res.StreamSeq, incident.P3, targets, snap.update(1).Batches, func(m *nats.Msg) error {
		m.Header.Set(hdrMsgID, "copy."+m.Header.Get(hdrMsgID))
		copies++
		_, err := peer.js.PublishMsg(peer.ctx, m)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if copies < 2*((n+7)/8) {
		t.Fatalf("%d copies parked, want a batch per lead time and bucket", copies)
	}
	b.waitFor("both reminders everywhere", 40*time.Second, func() bool {
		for _, p := range paths {
			if b.recv.delivered(p) < 3 {
				return false
			}
		}
		return true
	})
	b.waitParkedEmpty(channels.Webhook)
	for _, p := range paths {
		ps, hits := b.payloads(p)
		byLead(ps, hits, 1, 3)
		if len(ps) != 3 || ps[1].lead() != 8*time.Second || ps[2].lead() != 4*time.Second {
			t.Errorf("%s got %s", p, describe(ps))
		}
		sub := strings.TrimPrefix(p, "/")
		for _, lead := range testLeads {
			delivered := 0
			for _, r := range b.delivery(sub, reminderID("MNT-4:1", lead, sub, "wh")) {
				if r.Outcome == Delivered {
					delivered++
				}
			}
			if delivered != 1 {
				t.Errorf("%s: reminder %s recorded delivered %d times", sub, lead, delivered)
			}
		}
	}
}

// TestMaintenanceRemindersSurviveRestart: the only Herald process stops
// before any reminder is due; another one starts on the same server and
// sends them when due; a reminder that came due while no process ran, and
// whose maintenance has begun since, is not sent late: it is recorded
// expired.
func TestMaintenanceRemindersSurviveRestart(t *testing.T) {
	t.Parallel()
	clock := runFrom(time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC))
	cfg := reminderConfig(clock, map[string][]time.Duration{channels.Webhook: {8 * time.Second, 4 * time.Second}})
	b := setup(t, bundleOpts{cfg: cfg})
	b.putSubscriber(b.webhookSubscriber("m_hook", "/hook"))
	later, laterEnd := clock.window(20 * time.Second)
	soon, soonEnd := clock.window(8 * time.Second)
	b.publish(maintenanceEvent("MNT-5", 1, "scheduled", later, laterEnd))
	b.publish(maintenanceEvent("MNT-6", 1, "scheduled", soon, soonEnd))
	b.waitFor("both announcements", 10*time.Second, func() bool { return b.recv.delivered("/hook") == 2 })
	if n := b.parked(channels.Webhook).NumPending + uint64(b.parked(channels.Webhook).NumAckPending); n != 3 {
		t.Fatalf("%d reminders parked, want 3 (MNT-6's 8 s reminder was due before its announcement)", n)
	}
	b.stop()

	b.waitFor("MNT-6 to begin", 20*time.Second, func() bool { return clock.Now().After(soon) })
	peer := setup(t, bundleOpts{server: b.ns, cfg: cfg})
	id := reminderID("MNT-6:1", 4*time.Second, "m_hook", "wh")
	peer.waitFor("MNT-6's reminder to expire", 20*time.Second, func() bool { return peer.lastOutcome("m_hook", id) == Expired })
	if rec := peer.recordOf("m_hook", id); !strings.Contains(rec.Reason, "the maintenance began") {
		t.Errorf("record %+v", rec)
	}
	peer.waitFor("MNT-5's reminders", 30*time.Second, func() bool { return b.recv.delivered("/hook") == 4 })
	peer.waitParkedEmpty(channels.Webhook)
	ps, hits := b.payloads("/hook")
	byLead(ps, hits, 2, 4)
	if len(ps) != 4 || ps[2].Data.EventID != "MNT-5:1" || ps[2].lead() != 8*time.Second || ps[3].Data.EventID != "MNT-5:1" || ps[3].lead() != 4*time.Second {
		t.Errorf("webhook got %s", describe(ps))
	}
}

// TestMaintenanceReminderQuietHours: a reminder due in the endpoint's
// quiet hours is deferred to their end when that is before the window, and
// not sent at all (recorded expired) when the quiet hours last past the
// window's start.
func TestMaintenanceReminderQuietHours(t *testing.T) {
	t.Parallel()
	paris := mustLocation(t, "Europe/Paris")
	clock := runFrom(time.Date(2026, 3, 2, 6, 0, 0, 0, paris))
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		reminderConfig(clock, map[string][]time.Duration{channels.Webhook: {12 * time.Second, 4 * time.Second}})(c)
		patientDeferrals(c, channels.Webhook)
	}})
	sub := b.webhookSubscriber("m_night", "/night")
	sub.Endpoints[0].QuietHours = &subscribers.QuietHours{Start: "22:00", End: "07:00"}
	b.putSubscriber(sub)
	// 06:59:45 in Paris; quiet hours end at 07:00, in 15 s.
	clock.restart(time.Date(2026, 3, 2, 6, 59, 45, 0, paris))
	quietEnd := time.Date(2026, 3, 2, 7, 0, 0, 0, paris)

	// MNT-7 starts at 07:00:07: its 12 s reminder (06:59:55) waits for
	// 07:00, its 4 s one (07:00:03) is out of the quiet hours.
	start7, end7 := clock.window(22 * time.Second)
	// MNT-8 starts at 06:59:59, inside the quiet hours: its 4 s reminder
	// (06:59:55) could only go out at 07:00, after the start.
	start8, end8 := clock.window(14 * time.Second)
	b.publish(maintenanceEvent("MNT-7", 1, "scheduled", start7, end7))
	b.publish(maintenanceEvent("MNT-8", 1, "scheduled", start8, end8))

	expired := reminderID("MNT-8:1", 4*time.Second, "m_night", "wh")
	b.waitFor("MNT-8's reminder to expire", 30*time.Second, func() bool { return b.lastOutcome("m_night", expired) == Expired })
	if rec := b.recordOf("m_night", expired); !strings.Contains(rec.Reason, "quiet hours until") {
		t.Errorf("expired reminder: %+v", rec)
	}
	deferred := reminderID("MNT-7:1", 12*time.Second, "m_night", "wh")
	b.waitFor("MNT-7's reminders", 30*time.Second, func() bool {
		return b.lastOutcome("m_night", deferred) == Delivered && b.lastOutcome("m_night", reminderID("MNT-7:1", 4*time.Second, "m_night", "wh")) == Delivered
	})
	b.waitParkedEmpty(channels.Webhook)
	if got := outcomeList(b.delivery("m_night", deferred)); got != "deferred,delivered" {
		t.Errorf("the 12 s reminder of MNT-7: %s", got)
	}
	if recs := b.delivery("m_night", reminderID("MNT-8:1", 12*time.Second, "m_night", "wh")); len(recs) != 0 {
		t.Errorf("MNT-8's 12 s reminder was due before its announcement, yet: %+v", recs)
	}
	ps, hits := b.payloads("/night")
	reminders := 0
	for i, p := range ps {
		if p.Type != templates.WebhookTypeReminder {
			continue
		}
		reminders++
		if hits[i].at.Before(clock.real(quietEnd)) {
			t.Errorf("a reminder reached the endpoint during its quiet hours: %s", describe(ps[i:i+1]))
		}
	}
	// Both announcements (deferred to 07:00 as well) and MNT-7's two
	// reminders.
	if len(ps) != 4 || reminders != 2 {
		t.Errorf("webhook got %s", describe(ps))
	}
}

// TestMaintenanceRemindersSMS: SMS reminders go out at the SMS lead times
// only, and only to endpoints whose preferences take the maintenance, as
// they are when the reminder goes out: an endpoint narrowed to P1 or to
// other statuses gets nothing, one narrowed after the announcement gets
// the announcement but not the reminder (recorded unsubscribed).
func TestMaintenanceRemindersSMS(t *testing.T) {
	t.Parallel()
	clock := runFrom(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC))
	b := setup(t, bundleOpts{cfg: reminderConfig(clock, map[string][]time.Duration{
		channels.SMS: {4 * time.Second}, channels.Email: {8 * time.Second, 4 * time.Second}})})
	both := smsSubscriber("s_both", "+33612345678", "ops@dupont.example")
	p1 := smsSubscriber("s_p1", "+33612345679", "")
	p1.Endpoints[0].MinPriority = incident.P1
	started := smsSubscriber("s_started", "+33612345670", "")
	started.Endpoints[0].Statuses = []incident.Status{incident.InProgress}
	changed := smsSubscriber("s_changed", "+33612345671", "")
	for _, s := range []*subscribers.Subscriber{both, p1, started, changed} {
		b.putSubscriber(s)
	}
	start, end := clock.window(12 * time.Second)
	b.publish(maintenanceEvent("MNT-9", 1, "scheduled", start, end))
	b.waitFor("the announcements", 10*time.Second, func() bool {
		return b.lastOutcome("s_both", DeliveryID("MNT-9:1", "s_both", "sms")) == Outboxed &&
			b.lastOutcome("s_changed", DeliveryID("MNT-9:1", "s_changed", "sms")) == Outboxed
	})
	narrowed := smsSubscriber("s_changed", "+33612345671", "")
	narrowed.Endpoints[0].MinPriority = incident.P1
	b.putSubscriber(narrowed)

	sms4 := reminderID("MNT-9:1", 4*time.Second, "s_both", "sms")
	b.waitFor("the reminders", 30*time.Second, func() bool {
		return b.lastOutcome("s_both", sms4) == Outboxed &&
			b.lastOutcome("s_both", reminderID("MNT-9:1", 8*time.Second, "s_both", "mail")) == Outboxed &&
			b.lastOutcome("s_both", reminderID("MNT-9:1", 4*time.Second, "s_both", "mail")) == Outboxed &&
			b.lastOutcome("s_changed", reminderID("MNT-9:1", 4*time.Second, "s_changed", "sms")) == Unsubscribed
	})
	b.waitParkedEmpty(channels.SMS)
	b.waitParkedEmpty(channels.Email)
	if recs := b.delivery("s_both", reminderID("MNT-9:1", 8*time.Second, "s_both", "sms")); len(recs) != 0 {
		t.Errorf("an SMS reminder at a lead time SMS does not have: %+v", recs)
	}
	for _, s := range []string{"s_p1", "s_started"} {
		if recs := b.records(s); len(recs) != 0 {
			t.Errorf("%s, whose preferences do not take the maintenance, has records: %+v", s, recs)
		}
	}
	// What the reminder SMS says, in the subscriber's language.
	files, _ := filepath.Glob(filepath.Join(b.outbox, channels.SMS, "*", channels.EscapeID(sms4)+".txt"))
	if len(files) != 1 {
		t.Fatalf("%d outbox files for the SMS reminder", len(files))
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("Maintenance dans ")) || !bytes.Contains(data, []byte("Panne Oney")) {
		t.Errorf("the SMS reminder:\n%s", data)
	}
}

// TestMaintenanceState: the snapshot's maintenance state through
// announcements, quiet updates, moves, starts and cancellations.
func TestMaintenanceState(t *testing.T) {
	t.Parallel()
	at := func(h int) time.Time { return time.Date(2026, 3, 2, h, 0, 0, 0, time.UTC) }
	w := func(from, to int) Window { return Window{Start: at(from), End: at(to)} }
	ev := func(seq int64, status incident.Status, win *Window, quiet, cancelled bool) *incident.Event {
		e := &incident.Event{ID: fmt.Sprintf("M:%d", seq), IncidentID: "M", Sequence: seq, Status: status, Cancelled: cancelled}
		if win != nil {
			e.ScheduledFor, e.ScheduledUntil = &win.Start, &win.End
		}
		if quiet {
			f := false
			e.Notify = &f
		}
		return e
	}
	w1, w2, w3 := w(20, 21), w(22, 23), w(1, 2)
	var m *Maintenance
	if m = m.next(ev(1, incident.Investigating, nil, false, false)); m != nil {
		t.Fatalf("an incident got a maintenance state: %+v", m)
	}
	steps := []struct {
		name  string
		ev    *incident.Event
		check func(*Maintenance) bool
	}{
		{"announced", ev(1, incident.Scheduled, &w1, false, false), func(m *Maintenance) bool {
			return m.Window.equal(w1) && m.RemindersOf == 1 && m.Announced.equal(w1) && len(m.Moves) == 0
		}},
		{"announced again, same window", ev(2, incident.Scheduled, &w1, false, false), func(m *Maintenance) bool {
			return m.RemindersOf == 2 && len(m.Moves) == 0
		}},
		{"moved quietly: the window changes, not what subscribers know", ev(3, incident.Scheduled, &w2, true, false), func(m *Maintenance) bool {
			return m.Window.equal(w2) && m.RemindersOf == 2 && m.Announced.equal(w1) && len(m.Moves) == 0
		}},
		{"announced with the quiet window: a move from what subscribers knew", ev(4, incident.Scheduled, &w2, false, false), func(m *Maintenance) bool {
			mv, ok := m.moved(4)
			return m.RemindersOf == 4 && ok && mv.equal(w1) && len(m.Moves) == 1
		}},
		{"moved again", ev(5, incident.Scheduled, &w3, false, false), func(m *Maintenance) bool {
			mv, ok := m.moved(5)
			_, old := m.moved(4)
			return ok && mv.equal(w2) && old && m.RemindersOf == 5 && m.Announced.equal(w3)
		}},
		{"started, no window given", ev(6, incident.InProgress, nil, false, false), func(m *Maintenance) bool {
			return m.Status == incident.InProgress && m.Window.equal(w3) && m.RemindersOf == 5
		}},
		{"cancelled", ev(7, incident.Completed, &w3, false, true), func(m *Maintenance) bool {
			return m.Cancelled && m.Status == incident.Completed && m.RemindersOf == 5
		}},
	}
	for _, s := range steps {
		prev := m
		m = m.next(s.ev)
		if !s.check(m) {
			t.Fatalf("%s: %+v", s.name, m)
		}
		if prev != nil && prev == m {
			t.Fatalf("%s: the state was changed in place", s.name)
		}
	}
	if _, ok := m.moved(3); ok {
		t.Error("a quiet update counts as a move")
	}
	// The moves kept are bounded.
	for i := range 2 * maxMoves {
		win := w(i%24, i%24+1)
		if i%24 == 23 {
			win = w(0, 1)
		}
		m = m.next(ev(int64(10+i), incident.Scheduled, &win, false, false))
	}
	if len(m.Moves) != maxMoves || m.Moves[len(m.Moves)-1].Sequence != int64(10+2*maxMoves-1) {
		t.Errorf("%d moves kept, the last %d", len(m.Moves), m.Moves[len(m.Moves)-1].Sequence)
	}
}

func TestStaleReminder(t *testing.T) {
	t.Parallel()
	start, end := time.Date(2026, 3, 2, 20, 0, 0, 0, time.UTC), time.Date(2026, 3, 2, 21, 0, 0, 0, time.UTC)
	j := &Job{Kind: KindReminder, Sequence: 3, Reminder: &Reminder{Of: "M:3", Lead: time.Hour, Start: start, End: end}}
	standing := Maintenance{Window: Window{Start: start.In(time.FixedZone("CET", 3600)), End: end}, Status: incident.Scheduled, RemindersOf: 3}
	for _, tc := range []struct {
		name string
		edit func(*Maintenance)
		want string
	}{
		{"standing (the same instants in another zone)", func(*Maintenance) {}, ""},
		{"cancelled", func(m *Maintenance) { m.Cancelled, m.Status = true, incident.Completed }, "the maintenance was cancelled"},
		{"started", func(m *Maintenance) { m.Status = incident.InProgress }, "the maintenance is in progress"},
		{"completed", func(m *Maintenance) { m.Status = incident.Completed }, "the maintenance is completed"},
		{"moved", func(m *Maintenance) { m.Window.End = end.Add(time.Hour) }, "the maintenance moved to 2026-03-02T20:00:00Z – 2026-03-02T22:00:00Z"},
		{"announced again", func(m *Maintenance) { m.RemindersOf = 4 }, "update 4 announced the maintenance again; its own reminders stand"},
	} {
		m := standing
		tc.edit(&m)
		if got := staleReminder(&m, j); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := staleReminder(nil, j); got == "" {
		t.Error("a reminder of an incident with no maintenance state stands")
	}
}

func TestWorthReminding(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ahead, lead time.Duration
		want        bool
	}{
		{48 * time.Hour, 24 * time.Hour, true},
		{6 * time.Hour, 24 * time.Hour, true},  // announced 30 h before the window
		{5 * time.Hour, 24 * time.Hour, false}, // announced 29 h before: the announcement is the day-before notice
		{-time.Minute, time.Hour, false},       // already past
		{15 * time.Minute, time.Hour, true},
		{14 * time.Minute, time.Hour, false},
		{500 * 24 * time.Hour, time.Hour, false}, // beyond the update's retention
	} {
		if got := worthReminding(now, now.Add(tc.ahead), tc.lead, 400*24*time.Hour); got != tc.want {
			t.Errorf("due in %v, lead %v: %v, want %v", tc.ahead, tc.lead, got, tc.want)
		}
	}
}

func TestMaintenanceConfig(t *testing.T) {
	t.Parallel()
	def := Config{}.WithDefaults().Maintenance.Reminders
	for ch, want := range map[string][]time.Duration{
		channels.Email: {24 * time.Hour, time.Hour}, channels.Slack: {24 * time.Hour, time.Hour},
		channels.Webhook: {24 * time.Hour, time.Hour}, channels.SMS: {time.Hour},
	} {
		if fmt.Sprint(def[ch]) != fmt.Sprint(want) {
			t.Errorf("default %s reminders %v, want %v", ch, def[ch], want)
		}
	}
	mine := map[string][]time.Duration{channels.Email: {time.Hour, 72 * time.Hour}, channels.Slack: {}}
	got := MaintenanceConfig{Reminders: mine}.WithDefaults().Reminders
	if fmt.Sprint(got[channels.Email]) != "[72h0m0s 1h0m0s]" || len(got[channels.Slack]) != 0 || fmt.Sprint(got[channels.SMS]) != "[1h0m0s]" {
		t.Errorf("with some set: %v", got)
	}
	if mine[channels.Email][0] != time.Hour {
		t.Error("WithDefaults sorted the caller's list")
	}
	for name, tc := range map[string]struct {
		leads map[string][]time.Duration
		want  string
	}{
		"unknown channel": {map[string][]time.Duration{"fax": {time.Hour}}, `unknown channel "fax"`},
		"zero":            {map[string][]time.Duration{channels.SMS: {0}}, "0s is not between"},
		"negative":        {map[string][]time.Duration{channels.SMS: {-time.Hour}}, "-1h0m0s is not between"},
		"too far":         {map[string][]time.Duration{channels.Email: {32 * 24 * time.Hour}}, "768h0m0s is not between"},
		"twice":           {map[string][]time.Duration{channels.Email: {time.Hour, time.Hour}}, "1h0m0s is listed twice"},
	} {
		cfg := Config{SecretKey: "k0123456789abcdefghijklmnopqrstuvwxyz", Maintenance: MaintenanceConfig{Reminders: tc.leads}}.WithDefaults()
		err := cfg.validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if err := (Config{SecretKey: "k0123456789abcdefghijklmnopqrstuvwxyz"}).WithDefaults().validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// TestReminderJob: a reminder batch job survives its encoding, its targets
// keep their own delivery ids (not the announcement's), a target that
// leaves the batch keeps the reminder, and a reminder job without what it
// reminds of is refused.
func TestReminderJob(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 20, 0, 0, 0, time.UTC)
	j := &Job{ID: reminderBatchID(reminderEventID("M:1", 24*time.Hour), channels.Email, 0), Kind: KindReminder,
		EventID: reminderEventID("M:1", 24*time.Hour), IncidentID: "M", Sequence: 1, StreamSeq: 7, Priority: incident.P3,
		Channel: channels.Email, Targets: []Target{{SubscriberID: "s1", EndpointID: "mail"}, {SubscriberID: "s2", EndpointID: "mail"}},
		Reminder: &Reminder{Of: "M:1", Lead: 24 * time.Hour, Start: start, End: start.Add(time.Hour)}}
	data, err := encodeJob(j)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeJob(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.EventID != "M:1#reminder-24h" || got.updateEventID() != "M:1" || got.Reminder.Lead != 24*time.Hour || !got.Reminder.Start.Equal(start) || len(got.Targets) != 2 {
		t.Fatalf("decoded %+v", got)
	}
	id := got.deliveryID(got.Targets[0])
	if id == DeliveryID("M:1", "s1", "mail") || id != reminderID("M:1", 24*time.Hour, "s1", "mail") {
		t.Errorf("delivery id %s", id)
	}
	if reminderID("M:1", time.Hour, "s1", "mail") == id {
		t.Error("two lead times share a delivery id")
	}
	single, err := decodeJob(mustEncode(t, got.single(got.Targets[1])))
	if err != nil || single.ID != reminderID("M:1", 24*time.Hour, "s2", "mail") || single.Reminder == nil || single.Kind != KindReminder {
		t.Fatalf("single: %+v %v", single, err)
	}
	for name, edit := range map[string]func(*Job){
		"no reminder":         func(j *Job) { j.Reminder = nil },
		"no announcement":     func(j *Job) { r := *j.Reminder; r.Of = ""; j.Reminder = &r },
		"no lead":             func(j *Job) { r := *j.Reminder; r.Lead = 0; j.Reminder = &r },
		"window backwards":    func(j *Job) { r := *j.Reminder; r.End = r.Start; j.Reminder = &r },
		"no stream reference": func(j *Job) { j.StreamSeq = 0 },
	} {
		bad := *j
		edit(&bad)
		if _, err := decodeJob(mustEncode(t, &bad)); err == nil || !strings.Contains(err.Error(), "reminder job without its maintenance") {
			t.Errorf("%s: %v", name, err)
		}
	}
	for lead, want := range map[time.Duration]string{24 * time.Hour: "24h", time.Hour: "1h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 8 * time.Second: "8s", 2 * time.Minute: "2m"} {
		if got := leadName(lead); got != want {
			t.Errorf("leadName(%v) = %q, want %q", lead, got, want)
		}
	}
}

func mustEncode(t *testing.T, j *Job) []byte {
	t.Helper()
	data, err := encodeJob(j)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMaintenanceSnapshotReads: the snapshot a reminder or a rescheduling
// reads must be at least as recent as its update (a lagging replica is
// Herald's trouble, tried again later, never a wrong decision); a missing
// snapshot means no maintenance; the window an update moved, once read,
// is kept.
func TestMaintenanceSnapshotReads(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	m := b.d.maint
	w1 := Window{Start: time.Date(2026, 3, 2, 20, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 2, 21, 0, 0, 0, time.UTC)}
	w2 := Window{Start: w1.Start.Add(time.Hour), End: w1.End.Add(time.Hour)}
	announce := func(seq int64, w Window) {
		t.Helper()
		ev := &incident.Event{ID: fmt.Sprintf("MNT-X:%d", seq), IncidentID: "MNT-X", Sequence: seq, Status: incident.Scheduled,
			ScheduledFor: &w.Start, ScheduledUntil: &w.End}
		if _, err := b.d.snaps.update(b.ctx, "MNT-X", func(s *Snapshot) error {
			s.LatestSeq, s.LatestEventID, s.Maintenance = seq, ev.ID, s.Maintenance.next(ev)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if snap, err := m.snapshot(b.ctx, "MNT-X", 1); err != nil || snap != nil {
		t.Fatalf("no snapshot yet: %+v %v", snap, err)
	}
	announce(1, w1)
	if _, err := m.snapshot(b.ctx, "MNT-X", 2); !errors.Is(err, errStaleSnapshot) {
		t.Fatalf("a snapshot behind the job: %v", err)
	}
	if _, err := m.previousWindow(b.ctx, "MNT-X", 2, "MNT-X:2"); !errors.Is(err, errStaleSnapshot) {
		t.Fatalf("a snapshot behind the rescheduling: %v", err)
	}
	announce(2, w2)
	snap, err := m.snapshot(b.ctx, "MNT-X", 2)
	if err != nil || snap.Maintenance == nil || !snap.Maintenance.Window.equal(w2) {
		t.Fatalf("snapshot %+v: %v", snap, err)
	}
	prev, err := m.previousWindow(b.ctx, "MNT-X", 2, "MNT-X:2")
	if err != nil || prev == nil || !prev.equal(w1) {
		t.Fatalf("previous window %+v: %v", prev, err)
	}
	if none, err := m.previousWindow(b.ctx, "MNT-X", 1, "MNT-X:1"); err != nil || none != nil {
		t.Fatalf("the first announcement moved %+v (%v)", none, err)
	}
	// Fixed once read: the snapshot may go, the answer stays.
	if err := b.d.topo.Snapshots.Purge(b.ctx, "MNT-X"); err != nil {
		t.Fatal(err)
	}
	if again, err := m.previousWindow(b.ctx, "MNT-X", 2, "MNT-X:2"); err != nil || again == nil || !again.equal(w1) {
		t.Fatalf("after the purge: %+v %v", again, err)
	}
}

// TestMaintenanceDefaultLeads: with the default lead times, an
// announcement three days ahead parks, per channel, reminders due 24 h and
// 1 h before the window (SMS: 1 h only); one 20 hours ahead parks only the
// 1 h ones, one 50 minutes ahead none (the announcement says it all).
func TestMaintenanceDefaultLeads(t *testing.T) {
	t.Parallel()
	clock := runFrom(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	b := setup(t, bundleOpts{cfg: func(c *Config) { c.Now = clock.Now }})
	sub := b.webhookSubscriber("m_all", "/all")
	sub.Endpoints = append(sub.Endpoints,
		subscribers.Endpoint{ID: "mail", Channel: channels.Email, Address: "ops@all.example"},
		subscribers.Endpoint{ID: "sms", Channel: channels.SMS, Address: "+33612345678"},
		subscribers.Endpoint{ID: "slack", Channel: channels.Slack, SlackChannel: "C0123ABCD"})
	b.putSubscriber(sub)
	type parkedReminder struct {
		channel string
		lead    time.Duration
		due     time.Time
	}
	parked := func(incidentID string) []parkedReminder {
		t.Helper()
		info, err := b.d.topo.Deliveries.Info(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []parkedReminder
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := b.d.topo.Deliveries.GetMsg(b.ctx, seq)
			if err != nil || !strings.HasPrefix(m.Subject, subjParked) {
				continue
			}
			j, err := decodeJob(m.Data)
			if err != nil {
				t.Fatalf("parked message %d: %v", seq, err)
			}
			if j.Kind != KindReminder || j.IncidentID != incidentID {
				continue
			}
			due, _ := strconv.ParseInt(m.Header.Get(hdrDue), 10, 64)
			out = append(out, parkedReminder{j.Channel, j.Reminder.Lead, time.UnixMilli(due).UTC()})
		}
		return out
	}
	for _, tc := range []struct {
		incident string
		ahead    time.Duration
		want     map[string][]time.Duration
	}{
		{"MNT-D3", 72 * time.Hour, map[string][]time.Duration{
			channels.Email: {24 * time.Hour, time.Hour}, channels.Slack: {24 * time.Hour, time.Hour},
			channels.Webhook: {24 * time.Hour, time.Hour}, channels.SMS: {time.Hour}}},
		{"MNT-H20", 20 * time.Hour, map[string][]time.Duration{
			channels.Email: {time.Hour}, channels.Slack: {time.Hour}, channels.Webhook: {time.Hour}, channels.SMS: {time.Hour}}},
		{"MNT-M50", 50 * time.Minute, map[string][]time.Duration{}},
	} {
		start, end := clock.window(tc.ahead)
		res := b.publish(maintenanceEvent(tc.incident, 1, "scheduled", start, end))
		b.waitFor("the announcement of "+tc.incident, 10*time.Second, func() bool {
			return b.lastOutcome("m_all", DeliveryID(res.ID, "m_all", "wh")) == Delivered
		})
		b.waitFor(tc.incident+" fanned out", 10*time.Second, func() bool {
			snap, err := b.d.Snapshot(b.ctx, tc.incident)
			return err == nil && snap != nil && snap.update(1) != nil && snap.update(1).State == stateDone
		})
		got := map[string][]time.Duration{}
		for _, p := range parked(tc.incident) {
			got[p.channel] = append(got[p.channel], p.lead)
			if !p.due.Equal(start.Add(-p.lead)) {
				t.Errorf("%s: %s reminder %s due %v, want %v", tc.incident, p.channel, p.lead, p.due, start.Add(-p.lead))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s, %s ahead: reminders parked %v, want %v", tc.incident, tc.ahead, got, tc.want)
		}
	}
}
