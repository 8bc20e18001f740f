package ingest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/ingest"
)

// FuzzStatuspagePayload: any body either is refused with a PayloadError
// or parses; every event converted from it is valid.
func FuzzStatuspagePayload(f *testing.F) {
	for _, name := range []string{"incident-3.json", "incident-4.json", "component.json", "maintenance-cancelled.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", "statuspage", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"incident":{"id":"a","incident_updates":[{"id":"u","status":"verifying","affected_components":null}],"scheduled_for":"2025-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"incident":null}`))
	f.Add([]byte(`[]`))
	m := ingest.Mapping{Components: map[string]string{"Terminaux Nexo": "nexo-terminals"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ingest.ParseStatuspageWebhook(data)
		if err != nil {
			return
		}
		inc, err := m.Convert(p.Incident)
		if err != nil {
			return
		}
		for i, u := range inc.Updates {
			ev := u.Event
			ev.Sequence = int64(i + 1)
			if err := ev.Validate(); err != nil {
				t.Fatalf("converted event is invalid: %v", err)
			}
		}
	})
}

// FuzzStatuspageList: the API answers parse or are refused, never panic.
func FuzzStatuspageList(f *testing.F) {
	f.Add([]byte(`{"page":{"id":"x"},"incidents":[{"id":"a","name":"n","incident_updates":[{"id":"u","status":"resolved","body":"b"}]}]}`))
	f.Add([]byte(`{"scheduled_maintenances":[{"id":"m","scheduled_for":"2025-01-01T00:00:00Z","scheduled_until":"2024-01-01T00:00:00Z","incident_updates":[{"id":"u","status":"scheduled"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ingest.ParseStatuspageList(data)
		if err != nil {
			return
		}
		for _, in := range append(l.Incidents, l.ScheduledMaintenances...) {
			inc, err := (ingest.Mapping{}).Convert(&in)
			if err != nil {
				continue
			}
			for _, u := range inc.Updates {
				ev := u.Event
				ev.Sequence = 1
				if err := ev.Validate(); err != nil {
					t.Fatalf("converted event is invalid: %v", err)
				}
			}
		}
	})
}

// FuzzFeed: any document is a feed whose entries convert to valid events,
// or an error.
func FuzzFeed(f *testing.F) {
	for _, name := range []string{"status.atom", "status.rss"} {
		data, err := os.ReadFile(filepath.Join("testdata", "feed", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"version":"https://jsonfeed.org/version/1.1","items":[{"id":"1","content_html":"<p>Resolved</p>"}]}`))
	conv, err := ingest.NewFeedConverter(ingest.FeedPollerConfig{PollConfig: ingest.PollConfig{Name: "f"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		incs, _, err := conv.Convert(data)
		if err != nil {
			return
		}
		for _, inc := range incs {
			for _, u := range inc.Updates {
				ev := u.Event
				ev.Sequence = 1
				if err := ev.Validate(); err != nil {
					t.Fatalf("converted entry is invalid: %v", err)
				}
				if ev.Status == incident.Scheduled {
					t.Fatal("a feed entry became a scheduled maintenance without a window")
				}
			}
		}
	})
}
