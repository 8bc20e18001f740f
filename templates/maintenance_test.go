package templates

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"

	"github.com/heraldhq/herald/incident"
)

func TestRoundLeft(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want time.Duration }{
		{24*time.Hour + 3*time.Second, 24 * time.Hour},
		{23*time.Hour + 59*time.Minute, 24 * time.Hour},
		{19*time.Hour + 20*time.Minute, 19 * time.Hour},
		{2 * time.Hour, 2 * time.Hour},
		{time.Hour + 58*time.Minute, 2 * time.Hour},
		{time.Hour + 2*time.Second, time.Hour},
		{57 * time.Minute, 55 * time.Minute},
		{10 * time.Minute, 10 * time.Minute},
		{9*time.Minute + 31*time.Second, 10 * time.Minute},
		{4*time.Minute + 10*time.Second, 4 * time.Minute},
		{59*time.Second + 400*time.Millisecond, 59 * time.Second},
		{300 * time.Millisecond, time.Second},
		{-time.Minute, time.Second},
	} {
		if got := roundLeft(tc.in); got != tc.want {
			t.Errorf("roundLeft(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDurationText(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	for _, tc := range []struct {
		d          time.Duration
		en, fr, it string
	}{
		{24 * time.Hour, "24 hours", "24 heures", "24 ore"},
		{time.Hour, "1 hour", "1 heure", "1 ora"},
		{90 * time.Minute, "1 hour and 30 minutes", "1 heure et 30 minutes", "1 ora e 30 minuti"},
		{72 * time.Hour, "3 days", "3 jours", "3 giorni"},
		{50 * time.Hour, "2 days and 2 hours", "2 jours et 2 heures", "2 giorni e 2 ore"},
		{47 * time.Hour, "47 hours", "47 heures", "47 ore"},
		{time.Minute, "1 minute", "1 minute", "1 minuto"},
		{5 * time.Minute, "5 minutes", "5 minutes", "5 minuti"},
		{time.Second, "1 second", "1 seconde", "1 secondo"},
		{8 * time.Second, "8 seconds", "8 secondes", "8 secondi"},
		{0, "1 second", "1 seconde", "1 secondo"},
	} {
		for lang, want := range map[string]string{"en": tc.en, "fr": tc.fr, "it": tc.it} {
			if got := durationText(tc.d, r.cats[lang]); got != want {
				t.Errorf("%s: durationText(%v) = %q, want %q", lang, tc.d, got, want)
			}
		}
	}
}

func TestWindowText(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	paris := mustLocation(t, "Europe/Paris")
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name       string
		w          Window
		loc        *time.Location
		lang, want string
	}{
		{"same day", Window{utc("2025-05-06T20:00:00Z"), utc("2025-05-06T21:00:00Z")}, paris, "fr", "le 06/05/2025 de 22h00 à 23h00 (CEST)"},
		{"same day en", Window{utc("2025-05-06T20:00:00Z"), utc("2025-05-06T21:00:00Z")}, paris, "en", "May 6, 2025, 10:00 PM to 11:00 PM (CEST)"},
		{"same day it", Window{utc("2025-05-06T20:00:00Z"), utc("2025-05-06T21:00:00Z")}, paris, "it", "il 06/05/2025 dalle ore 22:00 alle ore 23:00 (CEST)"},
		{"over midnight in Paris, one day in UTC", Window{utc("2025-05-06T21:30:00Z"), utc("2025-05-06T23:00:00Z")}, paris, "fr", "du 06/05/2025 23h30 au 07/05/2025 01h00 (CEST)"},
		{"same in UTC", Window{utc("2025-05-06T21:30:00Z"), utc("2025-05-06T23:00:00Z")}, nil, "en", "May 6, 2025, 9:30 PM to 11:00 PM (UTC)"},
		{"across the change to winter time", Window{utc("2025-10-25T23:00:00Z"), utc("2025-10-26T03:00:00Z")}, paris, "it", "il 26/10/2025 dalle ore 01:00 alle ore 04:00 (CEST/CET)"},
	} {
		if got := windowText(tc.w, tc.loc, r.cats[tc.lang]); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestMaintenancePresentations: a reminder, a rescheduling and a
// cancellation each get their own wording on every channel, never served
// from the cache of another presentation; a reminder says the time left
// when it goes out, while its webhook payload stays the same for every
// retry.
func TestMaintenancePresentations(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	ev := localizedGolden()
	rc := testRecipient(t, "en")
	subject := func(u Update, ch string) string {
		t.Helper()
		out, err := r.Render(u, ch, rc)
		if err != nil {
			t.Fatal(err)
		}
		return out.Subject
	}
	plain := Update{Event: ev, AcceptedAt: acceptedAt}
	day := Update{Event: ev, AcceptedAt: acceptedAt, Reminder: &Reminder{Lead: 24 * time.Hour}}
	late := Update{Event: ev, AcceptedAt: acceptedAt, Reminder: &Reminder{Lead: 24 * time.Hour, Left: 19*time.Hour + 10*time.Minute}}
	hour := Update{Event: ev, AcceptedAt: acceptedAt, Reminder: &Reminder{Lead: time.Hour}}
	moved := Update{Event: ev, AcceptedAt: acceptedAt, Previous: &Window{Start: windowStart.Add(-time.Hour), End: windowEnd}}
	for _, ch := range allChannels {
		want := map[string]Update{
			"[Scheduled maintenance] Portal maintenance":   plain,
			"[Maintenance in 24 hours] Portal maintenance": day,
			"[Maintenance in 19 hours] Portal maintenance": late,
			"[Maintenance in 1 hour] Portal maintenance":   hour,
			"[Maintenance rescheduled] Portal maintenance": moved,
		}
		if ch == ChannelWebhook {
			// Payloads carry the lead time: the late reminder is the
			// reminder of a day.
			want["[Maintenance in 24 hours] Portal maintenance"] = late
			delete(want, "[Maintenance in 19 hours] Portal maintenance")
		}
		for s, u := range want {
			if got := subject(u, ch); got != s {
				t.Errorf("%s: subject %q, want %q", ch, got, s)
			}
		}
	}
	a, err := r.Render(day, ChannelWebhook, rc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Render(late, ChannelWebhook, rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Body, b.Body) || !bytes.Contains(a.Body, []byte(`"timestamp":"2025-05-05T20:00:00Z"`)) {
		t.Errorf("reminder payloads differ or are not stamped with their due time:\n%s\n%s", a.Body, b.Body)
	}
	text, err := r.Render(late, ChannelEmail, testRecipient(t, "fr"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.Text, "Rappel : la maintenance sur Portail marchand et Virements commence dans 19 heures.") {
		t.Errorf("the late reminder's text:\n%s", text.Text)
	}
}

// TestMaintenancePresentationRefused: a reminder or a rescheduling of an
// update that is not about a maintenance, or of a cancelled one, is an
// error, not a message that says something wrong.
func TestMaintenancePresentationRefused(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	incidentEv := localizedGolden()
	incidentEv.Status, incidentEv.ScheduledFor, incidentEv.ScheduledUntil = incident.Investigating, nil, nil
	cancelled := localizedGolden()
	cancelled.Status, cancelled.Cancelled = incident.Completed, true
	w := &Window{Start: windowStart, End: windowEnd}
	for name, u := range map[string]Update{
		"reminder of an incident":     {Event: incidentEv, Reminder: &Reminder{Lead: time.Hour}},
		"rescheduling of an incident": {Event: incidentEv, Previous: w},
		"reminder of a cancelled one": {Event: cancelled, Reminder: &Reminder{Lead: time.Hour}},
		"both at once":                {Event: localizedGolden(), Reminder: &Reminder{Lead: time.Hour}, Previous: w},
		"no lead":                     {Event: localizedGolden(), Reminder: &Reminder{}},
		"previous window backwards":   {Event: localizedGolden(), Previous: &Window{Start: windowEnd, End: windowStart}},
	} {
		u.AcceptedAt = acceptedAt
		for _, ch := range allChannels {
			if _, err := r.Render(u, ch, testRecipient(t, "fr")); err == nil {
				t.Errorf("%s on %s: rendered", name, ch)
			} else if name != "no lead" && name != "previous window backwards" && !errors.Is(err, errBadVariant) {
				t.Errorf("%s on %s: %v", name, ch, err)
			}
		}
	}
}

// TestMaintenanceCalendars: the reminder, the rescheduling and the
// cancellation of a maintenance carry an .ics that the iCalendar library
// parses, with the one UID of the maintenance and the SEQUENCE of the
// update they show (a reminder restates the announcement: same SEQUENCE,
// same window), so that a calendar moves or cancels the very event.
func TestMaintenanceCalendars(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, testConfig())
	shown := goldenMaintenance()
	moved := movedGolden()
	for i, want := range []struct {
		seq, method, status string
		start, end          time.Time
	}{
		{"2", "PUBLISH", "CONFIRMED", windowStart, windowEnd},
		{"3", "PUBLISH", "CONFIRMED", *moved.ScheduledFor, *moved.ScheduledUntil},
		{"4", "CANCEL", "CANCELLED", *moved.ScheduledFor, *moved.ScheduledUntil},
	} {
		for _, lang := range []string{"fr", "en", "it"} {
			out, err := r.Render(shown[i].u, ChannelEmail, testRecipient(t, lang))
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Attachments) != 1 {
				t.Fatalf("%s %s: %d attachments", shown[i].name, lang, len(out.Attachments))
			}
			cal, e := parseCalendar(t, out.Attachments[0])
			start, err1 := e.GetStartAt()
			end, err2 := e.GetEndAt()
			if err1 != nil || err2 != nil || e.Id() != "LOC-1@herald.example.com" || prop(t, e, ics.ComponentPropertySequence) != want.seq ||
				method(cal) != want.method || prop(t, e, ics.ComponentPropertyStatus) != want.status || !start.Equal(want.start) || !end.Equal(want.end) {
				t.Errorf("%s %s:\n%s", shown[i].name, lang, out.Attachments[0].Data)
			}
			// A calendar keeps the event: no "begins in 24 hours" in it.
			if desc := prop(t, e, ics.ComponentPropertyDescription); strings.Contains(desc, durationText(24*time.Hour, r.cats[lang])) {
				t.Errorf("%s %s: the event's description says the time left: %q", shown[i].name, lang, desc)
			}
		}
	}
}
