package templates

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/internal/golden"
)

// parseCalendar parses an attachment with the iCalendar library and
// returns the calendar and its one event.
func parseCalendar(t *testing.T, a Attachment) (*ics.Calendar, *ics.VEvent) {
	t.Helper()
	cal, err := ics.ParseCalendar(bytes.NewReader(a.Data))
	if err != nil {
		t.Fatalf("the .ics does not parse: %v\n%s", err, a.Data)
	}
	evs := cal.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	return cal, evs[0]
}

func prop(t *testing.T, e *ics.VEvent, p ics.ComponentProperty) string {
	t.Helper()
	v := e.GetProperty(p)
	if v == nil {
		return ""
	}
	return v.Value
}

func method(cal *ics.Calendar) string {
	for _, p := range cal.CalendarProperties {
		if p.IANAToken == string(ics.PropertyMethod) {
			return p.Value
		}
	}
	return ""
}

// TestCalendarAttachment: a maintenance email carries an .ics that
// parses, spans the window, keeps one UID per maintenance, raises its
// SEQUENCE with each update (a moved window moves the event), and cancels
// the event when the maintenance is cancelled; an incident email carries
// none.
func TestCalendarAttachment(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.CalendarOrganizer = "Payment status <status@example.com>"
	r := newTestRenderer(t, cfg)
	ev := localizedGolden()
	out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelEmail, testRecipient(t, "fr-FR"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Attachments) != 1 {
		t.Fatalf("%d attachments, want the .ics", len(out.Attachments))
	}
	a := out.Attachments[0]
	if a.Filename != "maintenance.ics" || a.ContentType != "text/calendar; charset=UTF-8; method=PUBLISH" {
		t.Fatalf("attachment %s %s", a.Filename, a.ContentType)
	}
	cal, e := parseCalendar(t, a)
	start, err := e.GetStartAt()
	if err != nil {
		t.Fatal(err)
	}
	end, err := e.GetEndAt()
	if err != nil {
		t.Fatal(err)
	}
	if e.Id() != "LOC-1@herald.example.com" || !start.Equal(windowStart) || !end.Equal(windowEnd) ||
		prop(t, e, ics.ComponentPropertySequence) != "2" || method(cal) != "PUBLISH" ||
		prop(t, e, ics.ComponentPropertyStatus) != "CONFIRMED" || prop(t, e, ics.ComponentPropertySummary) != "Maintenance du portail" ||
		!strings.Contains(prop(t, e, ics.ComponentPropertyOrganizer), "status@example.com") {
		t.Fatalf("event %s from %s to %s:\n%s", e.Id(), start, end, a.Data)
	}
	if !bytes.Contains(a.Data, []byte("\r\n")) {
		t.Error("iCalendar lines must end in CRLF")
	}
	golden.Check(t, filepath.Join("testdata", "golden", "LOC-1_2.fr.ics"), a.Data)

	// The window moves: same UID, higher SEQUENCE, new times.
	moved := *ev
	moved.ID, moved.Sequence = "LOC-1:3", 3
	newStart, newEnd := windowStart.Add(24*time.Hour), windowEnd.Add(25*time.Hour)
	moved.ScheduledFor, moved.ScheduledUntil = &newStart, &newEnd
	out, err = r.Render(Update{Event: &moved, AcceptedAt: acceptedAt}, ChannelEmail, testRecipient(t, "en"))
	if err != nil {
		t.Fatal(err)
	}
	_, e = parseCalendar(t, out.Attachments[0])
	start, _ = e.GetStartAt()
	end, _ = e.GetEndAt()
	if e.Id() != "LOC-1@herald.example.com" || prop(t, e, ics.ComponentPropertySequence) != "3" || !start.Equal(newStart) || !end.Equal(newEnd) ||
		prop(t, e, ics.ComponentPropertySummary) != "Portal maintenance" {
		t.Fatalf("moved: %s", out.Attachments[0].Data)
	}

	// Cancelled: METHOD:CANCEL, STATUS:CANCELLED, same UID.
	cancelled := moved
	cancelled.ID, cancelled.Sequence, cancelled.Status, cancelled.Cancelled = "LOC-1:4", 4, incident.Completed, true
	out, err = r.Render(Update{Event: &cancelled, AcceptedAt: acceptedAt}, ChannelEmail, testRecipient(t, "it"))
	if err != nil {
		t.Fatal(err)
	}
	a = out.Attachments[0]
	cal, e = parseCalendar(t, a)
	if a.ContentType != "text/calendar; charset=UTF-8; method=CANCEL" || method(cal) != "CANCEL" ||
		prop(t, e, ics.ComponentPropertyStatus) != "CANCELLED" || e.Id() != "LOC-1@herald.example.com" ||
		prop(t, e, ics.ComponentPropertySequence) != "4" {
		t.Fatalf("cancelled: %s", a.Data)
	}

	// An incident: no attachment, on any channel.
	plain := *ev
	plain.Status, plain.ScheduledFor, plain.ScheduledUntil = incident.Investigating, nil, nil
	for _, ch := range allChannels {
		out, err := r.Render(Update{Event: &plain, AcceptedAt: acceptedAt}, ch, testRecipient(t, "fr"))
		if err != nil || len(out.Attachments) != 0 {
			t.Fatalf("%s: incident rendered with %d attachments (%v)", ch, len(out.Attachments), err)
		}
	}
}
