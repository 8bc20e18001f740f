package templates

import (
	"bufio"
	"os"
	"testing"
	"time"
	_ "time/tzdata" // tests must not depend on the machine's zone database

	"github.com/heraldhq/herald/incident"
)

// corpusPath is the status page's real history, one update per line.
const corpusPath = "../examples/incidents.jsonl"

// acceptedAt is the fixed acceptance time of corpus updates in tests (the
// corpus has no published_at).
var acceptedAt = time.Date(2025, 5, 3, 14, 11, 0, 0, time.UTC)

// loadCorpus returns every update of the corpus, validated.
func loadCorpus(tb testing.TB) []*incident.Event {
	tb.Helper()
	f, err := os.Open(corpusPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []*incident.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		ev, err := incident.Decode(sc.Bytes(), 0)
		if err != nil {
			tb.Fatalf("%s:%d: %v", corpusPath, n, err)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(out) < 100 {
		tb.Fatalf("corpus has %d updates", len(out))
	}
	return out
}

// corpusEvent returns the update with the given id.
func corpusEvent(tb testing.TB, events []*incident.Event, id string) *incident.Event {
	tb.Helper()
	for _, ev := range events {
		if ev.ID == id {
			return ev
		}
	}
	tb.Fatalf("no update %s in the corpus", id)
	return nil
}

// testConfig is the configuration of tests: links to an example status
// page and unsubscribe service.
func testConfig() Config {
	return Config{
		PublicURL:         "https://herald.example.com",
		StatusPageURL:     "https://status.example.com",
		UnsubscribeMailto: "unsubscribe@example.com",
	}
}

func newTestRenderer(tb testing.TB, cfg Config) *Renderer {
	tb.Helper()
	r, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func mustLocation(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

// testRecipient is a typical French subscriber.
func testRecipient(tb testing.TB, locale string) Recipient {
	return Recipient{
		Locale:         locale,
		Location:       mustLocation(tb, "Europe/Paris"),
		Name:           "Boulangerie Dupont",
		UnsubscribeURL: "https://herald.example.com/unsubscribe/AbC123",
		PreferencesURL: "https://herald.example.com/preferences/AbC123",
	}
}

var allChannels = []string{ChannelEmail, ChannelSMS, ChannelSlack, ChannelWebhook}
