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
	for _, ev := range evs {
		for _, loc := range []string{"fr", "en", "it"} {
			for _, ch := range allChannels {
				out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ch, testRecipient(t, loc))
				if err != nil {
					t.Fatal(err)
				}
				base := strings.ReplaceAll(ev.ID, ":", "_") + "." + loc + "." + ch
				for name, data := range goldenFiles(t, base, out) {
					golden.Check(t, filepath.Join("testdata", "golden", name), data)
				}
			}
		}
	}
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
