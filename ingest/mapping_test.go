package ingest_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/ingest"
)

// TestMappingConvert: each Statuspage field reaches its event field as
// the README's table says, with the defaults and the configured maps.
func TestMappingConvert(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	override := "critical"
	postmortem := "Post-mortem: the certificate expired.\n\nPost-mortem : le certificat avait expiré."
	in := &ingest.StatuspageIncident{
		ID: "inc42", Name: "  Paiements refusés /\n Declined payments ", Status: "postmortem", Impact: "minor",
		Shortlink: "https://stspg.io/x42", CreatedAt: ts("2025-04-07T09:14:00Z"), StartedAt: ts("2025-04-07T09:05:00Z"),
		PostmortemBody: &postmortem,
		Components:     []ingest.StatuspageAffected{{ID: "c0de0nex0", Name: "Terminaux Nexo"}},
		// Newest first, as Statuspage lists them; the first one is shown
		// earlier than it was created (display_at wins).
		Updates: []ingest.StatuspageUpdate{
			{ID: "u5", Status: "postmortem", CreatedAt: ts("2025-04-08T10:00:00Z"), DeliverNotifications: &yes},
			{ID: "u4", Status: "weird", Body: "?", CreatedAt: ts("2025-04-07T12:00:00Z")},
			{ID: "u3", Status: "resolved", Body: "Résolu.\n\nResolved.", CreatedAt: ts("2025-04-07T11:00:00Z"),
				AffectedComponents: []ingest.StatuspageAffected{{Name: "No components were affected by this update."}}, DeliverNotifications: &no},
			{ID: "u2", Status: "identified", Body: "Identifié.\n\nIdentified.", CreatedAt: ts("2025-04-07T10:00:00Z"),
				AffectedComponents: []ingest.StatuspageAffected{{Code: "other1", Name: "3-D Secure"}, {Name: "paiement ONEY"}}},
			{ID: "u1", Status: "investigating", Body: "Nous enquêtons.\n\nWe are investigating.", CreatedAt: ts("2025-04-07T09:30:00Z"),
				DisplayAt: ts("2025-04-07T09:14:00Z"), AffectedComponents: nil},
		},
	}
	m := ingest.Mapping{Components: map[string]string{"c0de0nex0": "nexo-terminals", "Paiement Oney": "oney"}}
	got, err := m.Convert(in)
	if err != nil || len(got.Problems) != 0 {
		t.Fatalf("convert: %v %v", err, got.Problems)
	}
	if got.ID != "inc42" || got.Open {
		t.Errorf("incident %s open %v", got.ID, got.Open)
	}
	var keys []string
	for _, u := range got.Updates {
		keys = append(keys, u.Key)
		if u.Event.ID != u.Key || u.Event.IncidentID != "inc42" || u.Event.Sequence != 0 {
			t.Errorf("update %s: id %s incident %s sequence %d (the store numbers it)", u.Key, u.Event.ID, u.Event.IncidentID, u.Event.Sequence)
		}
		if u.Event.Title.Plain != "Paiements refusés / Declined payments" || u.Event.URL != "https://stspg.io/x42" || u.Event.Priority != incident.P3 {
			t.Errorf("update %s: title %q url %q priority %s", u.Key, u.Event.Title.Plain, u.Event.URL, u.Event.Priority)
		}
		if u.Event.StartedAt == nil || !u.Event.StartedAt.Equal(*ts("2025-04-07T09:05:00Z")) {
			t.Errorf("update %s: started_at %v", u.Key, u.Event.StartedAt)
		}
	}
	if !slices.Equal(keys, []string{"u1", "u2", "u3", "u4", "u5"}) {
		t.Fatalf("updates in order %v", keys)
	}
	ev := func(i int) incident.Event { return got.Updates[i].Event }
	for i, want := range []struct {
		status     incident.Status
		components []string
		notify     bool
		published  string
		body       string
	}{
		// null affected_components: the incident's components.
		{incident.Investigating, []string{"nexo-terminals"}, true, "2025-04-07T09:14:00Z", "Nous enquêtons.\n\nWe are investigating."},
		// an unlisted code: the slug of its name; a listed name, in
		// another case, without a code.
		{incident.Identified, []string{"nexo-terminals", "3-d-secure", "oney"}, true, "2025-04-07T10:00:00Z", "Identifié.\n\nIdentified."},
		// a name-only placeholder is dropped; deliver_notifications false.
		{incident.Resolved, []string{"nexo-terminals"}, false, "2025-04-07T11:00:00Z", "Résolu.\n\nResolved."},
		// an unknown status: investigating.
		{incident.Investigating, []string{"nexo-terminals"}, true, "2025-04-07T12:00:00Z", "?"},
		// an empty post-mortem update: the incident's post-mortem.
		{incident.Postmortem, []string{"nexo-terminals"}, true, "2025-04-08T10:00:00Z", postmortem},
	} {
		e := ev(i)
		if e.Status != want.status || !slices.Equal(e.Components, want.components) || e.ShouldNotify() != want.notify ||
			e.PublishedAt == nil || !e.PublishedAt.Equal(*ts(want.published)) || e.Body.Plain != want.body {
			t.Errorf("update %s: status %s components %v notify %v published %v body %q; want %+v",
				e.ID, e.Status, e.Components, e.ShouldNotify(), e.PublishedAt, e.Body.Plain, want)
		}
	}

	// Impacts: the default map, impact_override, a configured map whose
	// entries replace the default ones, an unrated maintenance.
	for _, tc := range []struct {
		impact   string
		override *string
		m        map[string]incident.Priority
		want     incident.Priority
	}{
		{"critical", nil, nil, incident.P1},
		{"major", nil, nil, incident.P2},
		{"minor", nil, nil, incident.P3},
		{"none", nil, nil, incident.P4},
		{"maintenance", nil, nil, ""},
		{"minor", &override, nil, incident.P1},
		{"major", nil, map[string]incident.Priority{"major": incident.P1}, incident.P1},
		{"minor", nil, map[string]incident.Priority{"major": incident.P1}, incident.P3},
		{"none", nil, map[string]incident.Priority{"none": ""}, ""},
	} {
		in := &ingest.StatuspageIncident{ID: "p", Name: "x", Impact: tc.impact, ImpactOverride: tc.override,
			Updates: []ingest.StatuspageUpdate{{ID: "u", Status: "investigating", Body: "b"}}}
		got, err := ingest.Mapping{Impact: tc.m}.Convert(in)
		if err != nil || len(got.Updates) != 1 || got.Updates[0].Event.Priority != tc.want {
			t.Errorf("impact %s (override %v, map %v): %+v %v, want %q", tc.impact, tc.override, tc.m, got, err, tc.want)
		}
	}

	// A maintenance: the window on every update, verifying is in
	// progress, completed before the window opened is cancelled; a
	// shortlink that is not http(s) is dropped; scheduled without a
	// window is a problem, not an event.
	mnt := &ingest.StatuspageIncident{ID: "mnt", Name: "Maintenance", Impact: "maintenance", Shortlink: "stspg.io/m",
		ScheduledFor: ts("2025-06-01T22:00:00Z"), ScheduledUntil: ts("2025-06-02T02:00:00Z"),
		Updates: []ingest.StatuspageUpdate{
			{ID: "m1", Status: "scheduled", Body: "Planned.", CreatedAt: ts("2025-05-20T10:00:00Z")},
			{ID: "m2", Status: "verifying", Body: "Checking.", CreatedAt: ts("2025-06-01T23:00:00Z")},
			{ID: "m3", Status: "completed", Body: "Done.", CreatedAt: ts("2025-06-02T01:00:00Z")},
		}}
	got, err = ingest.Mapping{}.Convert(mnt)
	if err != nil || len(got.Updates) != 3 {
		t.Fatalf("maintenance: %+v %v", got, err)
	}
	for i, want := range []incident.Status{incident.Scheduled, incident.InProgress, incident.Completed} {
		e := got.Updates[i].Event
		if e.Status != want || e.Cancelled || e.URL != "" || e.Priority != "" || e.ScheduledFor == nil || !e.ScheduledFor.Equal(*mnt.ScheduledFor) ||
			e.ScheduledUntil == nil || !e.ScheduledUntil.Equal(*mnt.ScheduledUntil) {
			t.Errorf("maintenance update %d: %+v", i+1, e)
		}
	}
	mnt.Updates[2].CreatedAt = ts("2025-05-25T10:00:00Z")
	mnt.Updates = slices.Delete(mnt.Updates, 1, 2)
	if got, err = (ingest.Mapping{}).Convert(mnt); err != nil || len(got.Updates) != 2 || !got.Updates[1].Event.Cancelled || got.Open {
		t.Errorf("maintenance completed before its window: %+v %v", got, err)
	}
	noWindow := &ingest.StatuspageIncident{ID: "mnt2", Name: "Maintenance", Status: "scheduled",
		Updates: []ingest.StatuspageUpdate{{ID: "w1", Status: "scheduled", Body: "Soon."}}}
	got, err = ingest.Mapping{}.Convert(noWindow)
	var ce *ingest.ConvertError
	if err != nil || len(got.Updates) != 0 || len(got.Problems) != 1 || !errors.As(got.Problems[0], &ce) || ce.UpdateID != "w1" {
		t.Errorf("scheduled without a window: %+v %v", got, err)
	}
}

// TestWebhookMaintenance: a maintenance announced, moved, then called
// off, each by webhook: one event per update, the window of each payload,
// the move as a new announcement, the cancellation flagged; components
// mapped by name.
func TestWebhookMaintenance(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	r := newReceiver(t, bu, bu.store("p1"), ingest.Mapping{Components: map[string]string{"virements": "payouts"}})
	for _, tc := range []struct {
		file string
		want int
	}{{"maintenance-scheduled.json", 1}, {"maintenance-moved.json", 1}, {"maintenance-moved.json", 0}, {"maintenance-cancelled.json", 1}} {
		if code, ans := r.post(t, testToken, fixture(t, tc.file)); code != http.StatusOK || len(ans["published"].([]any)) != tc.want {
			t.Fatalf("%s: %d %v, want %d published", tc.file, code, ans, tc.want)
		}
	}
	evs := bu.events()
	if got := ids(evs); !slices.Equal(got, []string{"mu1announce0", "mu2moved0000", "mu3cancel000"}) {
		t.Fatalf("stream holds %v", got)
	}
	at := func(s string) time.Time { return *ts(s) }
	for i, want := range []struct {
		status     incident.Status
		start, end time.Time
		cancelled  bool
	}{
		{incident.Scheduled, at("2025-06-01T22:00:00Z"), at("2025-06-02T02:00:00Z"), false},
		{incident.Scheduled, at("2025-06-01T23:00:00Z"), at("2025-06-02T03:00:00Z"), false},
		{incident.Completed, at("2025-06-01T23:00:00Z"), at("2025-06-02T03:00:00Z"), true},
	} {
		e := evs[i]
		if e.Sequence != int64(i+1) || e.Status != want.status || e.Cancelled != want.cancelled || e.Priority != "" ||
			e.ScheduledFor == nil || !e.ScheduledFor.Equal(want.start) || e.ScheduledUntil == nil || !e.ScheduledUntil.Equal(want.end) ||
			!slices.Equal(e.Components, []string{"payouts"}) {
			t.Errorf("event %d: %+v, want %+v", i+1, e, want)
		}
	}
}
