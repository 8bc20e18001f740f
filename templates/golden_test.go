package templates

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/internal/golden"
)

// goldenUpdates is a representative set of corpus updates: the shared
// header and FR/EN/IT markers, post-mortems with headings, lists and
// tables (with and without separators), a P1, a French/Italian update, a
// French-only one, an English-only one, and an update with separators.
var goldenUpdates = []string{
	"TSR-1723:1",     // header, FR/EN/IT markers
	"TSR-1572:4",     // post-mortem, separators, tables
	"TSR-1532:1",     // P1
	"INC-2f9cd51f:8", // post-mortem without headings, timeline
	"INC-13cbe58a:1", // French and "In Italian:"
	"INC-6465033d:1", // French only
	"INC-9f682075:1", // English
	"INC-aa19fae6:5", // French then English, no markers
}

// The maintenance window of localizedGolden.
var (
	windowStart = time.Date(2025, 5, 6, 20, 0, 0, 0, time.UTC)
	windowEnd   = time.Date(2025, 5, 6, 21, 0, 0, 0, time.UTC)
)

// localizedGolden is an event giving its texts per locale.
func localizedGolden() *incident.Event {
	return &incident.Event{ID: "LOC-1:2", IncidentID: "LOC-1", Sequence: 2, Status: incident.Scheduled, Priority: incident.P3,
		Components: []string{"portal", "payouts"},
		Title: incident.LocalizedText(map[string]string{
			"fr": "Maintenance du portail", "en": "Portal maintenance", "it": "Manutenzione del portale"}),
		Body: incident.LocalizedText(map[string]string{
			"fr": "Le portail sera **indisponible** de 22h à 23h.\n\n* Virements : aucun impact\n* [Détails](https://status.example.com/m/1)",
			"en": "The portal will be **unavailable** from 10 PM to 11 PM.\n\n* Payouts: no impact\n* [Details](https://status.example.com/m/1)",
			"it": "Il portale sarà **non disponibile** dalle 22 alle 23.\n\n* Bonifici: nessun impatto\n* [Dettagli](https://status.example.com/m/1)"}),
		URL:       "https://status.example.com/incidents/LOC-1",
		StartedAt: &acceptedAt, PublishedAt: &acceptedAt, ScheduledFor: &windowStart, ScheduledUntil: &windowEnd}
}

// TestGolden renders the representative updates in every language and
// channel and compares with testdata/golden (go test -run TestGolden
// -update rewrites them).
func TestGolden(t *testing.T) {
	t.Parallel()
	events := loadCorpus(t)
	r := newTestRenderer(t, testConfig())
	var evs []*incident.Event
	for _, id := range goldenUpdates {
		evs = append(evs, corpusEvent(t, events, id))
	}
	evs = append(evs, localizedGolden())
	type shown struct {
		name string // the files' base name, before the locale
		u    Update
	}
	var all []shown
	for _, ev := range evs {
		all = append(all, shown{strings.ReplaceAll(ev.ID, ":", "_"), Update{Event: ev, AcceptedAt: acceptedAt}})
	}
	for _, m := range goldenMaintenance() {
		all = append(all, shown{m.name, m.u})
	}
	for _, s := range all {
		for _, loc := range []string{"fr", "en", "it"} {
			for _, ch := range allChannels {
				out, err := r.Render(s.u, ch, testRecipient(t, loc))
				if err != nil {
					t.Fatal(err)
				}
				base := s.name + "." + loc + "." + ch
				for name, data := range goldenFiles(t, base, out) {
					golden.Check(t, filepath.Join("testdata", "golden", name), data)
				}
			}
		}
	}
}

// goldenMaintenance is the maintenance of localizedGolden presented every
// way it is sent: its reminder a day before, its rescheduling (a later
// update moving the window by a day), and its cancellation.
func goldenMaintenance() []struct {
	name string
	u    Update
} {
	ev := localizedGolden()
	moved, cancelled := movedGolden(), localizedGolden()
	cancelled.ID, cancelled.Sequence, cancelled.Status, cancelled.Cancelled = "LOC-1:4", 4, incident.Completed, true
	cancelled.ScheduledFor, cancelled.ScheduledUntil = moved.ScheduledFor, moved.ScheduledUntil
	return []struct {
		name string
		u    Update
	}{
		{"LOC-1_2.reminder-24h", Update{Event: ev, AcceptedAt: acceptedAt, Reminder: &Reminder{Lead: 24 * time.Hour}}},
		{"LOC-1_3.rescheduled", Update{Event: moved, AcceptedAt: acceptedAt, Previous: &Window{Start: windowStart, End: windowEnd}}},
		{"LOC-1_4.cancelled", Update{Event: cancelled, AcceptedAt: acceptedAt}},
	}
}

// movedGolden is the update of localizedGolden's maintenance that moves
// its window a day later, and makes it an hour longer.
func movedGolden() *incident.Event {
	ev := localizedGolden()
	start, end := windowStart.Add(24*time.Hour), windowEnd.Add(25*time.Hour)
	ev.ID, ev.Sequence, ev.ScheduledFor, ev.ScheduledUntil = "LOC-1:3", 3, &start, &end
	ev.Body = incident.LocalizedText(map[string]string{
		"fr": "La maintenance est **reportée** d’un jour.", "en": "The maintenance is **postponed** by a day.",
		"it": "La manutenzione è **rinviata** di un giorno."})
	return ev
}

// goldenFiles returns the files that show a rendering.
func goldenFiles(t *testing.T, base string, out *Rendered) map[string][]byte {
	t.Helper()
	meta := fmt.Sprintf("locale: %s, text in %s (requested %s, confidence %s, fallback %v)\nsubject: %s\n", out.Frame, out.Locale, out.Requested, out.Confidence, out.Fallback, out.Subject)
	switch {
	case out.HTML != "":
		var h strings.Builder
		for _, k := range sortedKeys(out.Headers) {
			h.WriteString(k + ": " + out.Headers[k] + "\n")
		}
		return map[string][]byte{
			base + ".txt":  []byte(meta + h.String() + "\n" + out.Text),
			base + ".html": []byte(out.HTML),
		}
	case out.Parent != nil:
		return map[string][]byte{base + ".json": []byte(meta + "\nmessage:\n" + indentJSON(t, out.Body) + "\nparent:\n" + indentJSON(t, out.Parent))}
	case out.Body != nil:
		return map[string][]byte{base + ".json": []byte(indentJSON(t, out.Body))}
	default:
		return map[string][]byte{base + ".txt": []byte(meta + fmt.Sprintf("segments: %d (%s)\n\n%s\n", out.Segments, out.Encoding, out.Text))}
	}
}

func indentJSON(t *testing.T, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, data, "", "  "); err != nil {
		t.Fatal(err)
	}
	return b.String() + "\n"
}
