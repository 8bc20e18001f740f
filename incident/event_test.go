package incident

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

const valid = `{"id":"TSR-1610:3","incident_id":"TSR-1610","sequence":3,"status":"monitoring","priority":"P2",
"components":["nexo-terminals"],"title":"Double prélèvement / Duplicate charges","body":"FR ... EN ...",
"url":"https://status.example.com/incidents/TSR-1610","started_at":"2025-04-07T09:12:00+02:00",
"published_at":"2025-04-10T11:43:00+02:00"}`

func TestDecodeValid(t *testing.T) {
	t.Parallel()
	ev, err := Decode([]byte(valid), 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "TSR-1610:3" || ev.Sequence != 3 || ev.Status != Monitoring || ev.Priority != P2 ||
		ev.Title.Plain == "" || ev.StartedAt == nil || !ev.ShouldNotify() {
		t.Fatalf("decoded %+v", ev)
	}
}

func TestDecodeLocalizedText(t *testing.T) {
	t.Parallel()
	ev, err := Decode([]byte(`{"id":"a:1","incident_id":"a","sequence":1,"status":"resolved","title":{"fr":"Résolu","en":"Resolved"},"body":{"fr":"Fini","en":"Done"},"notify":false}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Title.ByLocale["fr"] != "Résolu" || ev.Title.Plain != "" || ev.ShouldNotify() {
		t.Fatalf("decoded %+v", ev)
	}
	if got := strings.Join(ev.Title.Locales(), ","); got != "en,fr" {
		t.Fatalf("locales %s", got)
	}
}

// TestDecodeErrors checks that every problem names the field at fault.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	base := func(repl ...string) string {
		s := `{"id":"a:1","incident_id":"a","sequence":1,"status":"resolved","title":"T","body":"B"}`
		for i := 0; i+1 < len(repl); i += 2 {
			s = strings.Replace(s, repl[i], repl[i+1], 1)
		}
		return s
	}
	for _, tc := range []struct {
		name, input, field, message string
	}{
		{"empty input", ``, "(event)", "empty input"},
		{"not json", `hello`, "(event)", "invalid JSON"},
		{"truncated", `{"id":"a:1"`, "(event)", "truncated"},
		{"array", `[1]`, "(event)", "must be"},
		{"trailing data", base() + `{}`, "(event)", "after the JSON object"},
		{"unknown field", base(`"body":"B"`, `"body":"B","colour":"red"`), "colour", "unknown field"},
		{"missing id", base(`"id":"a:1",`, ``), "id", "is required"},
		{"id with space", base(`"a:1"`, `"a 1"`), "id", "without spaces"},
		{"missing incident", base(`"incident_id":"a",`, ``), "incident_id", "is required"},
		{"incident with dot", base(`"incident_id":"a"`, `"incident_id":"a.b"`), "incident_id", "letters, digits"},
		{"sequence zero", base(`"sequence":1`, `"sequence":0`), "sequence", "must be >= 1"},
		{"sequence negative", base(`"sequence":1`, `"sequence":-4`), "sequence", "must be >= 1"},
		{"sequence string", base(`"sequence":1`, `"sequence":"1"`), "sequence", "must be an integer"},
		{"status missing", base(`"status":"resolved",`, ``), "status", "is required"},
		{"status unknown", base(`"resolved"`, `"fixed"`), "status", "must be one of investigating, identified"},
		{"priority", base(`"status"`, `"priority":"P5","status"`), "priority", "P1, P2, P3, P4"},
		{"component bad", base(`"status"`, `"components":["Nexo Terminals"],"status"`), "components[0]", "component id"},
		{"component dup", base(`"status"`, `"components":["oney","oney"],"status"`), "components[1]", "duplicate"},
		{"title empty", base(`"title":"T"`, `"title":"  "`), "title", "is required"},
		{"title multiline", base(`"title":"T"`, `"title":"a\nb"`), "title", "single line"},
		{"title number", base(`"title":"T"`, `"title":3`), "title/body", "string or an object"},
		{"body empty object", base(`"body":"B"`, `"body":{}`), "body", "is required"},
		{"body bad locale", base(`"body":"B"`, `"body":{"french!":"x"}`), "body.french!", "BCP 47"},
		{"url scheme", base(`"status"`, `"url":"javascript:alert(1)","status"`), "url", "http(s) URL"},
		{"url credentials", base(`"status"`, `"url":"https://u:p@x.example/","status"`), "url", "credentials"},
		{"bad time", base(`"status"`, `"started_at":"yesterday","status"`), "started_at/published_at", "RFC 3339"},
		{"published before start", base(`"status"`, `"started_at":"2025-01-02T00:00:00Z","published_at":"2025-01-01T00:00:00Z","status"`), "published_at", "before started_at"},
		{"scheduled without window", base(`"resolved"`, `"scheduled"`), "scheduled_for", "required when status is scheduled"},
		{"scheduled without end", base(`"resolved"`, `"scheduled"`), "scheduled_until", "required when status is scheduled"},
		{"window start alone", base(`"status"`, `"scheduled_for":"2025-01-02T00:00:00Z","status"`), "scheduled_until", "required with scheduled_for"},
		{"window end alone", base(`"status"`, `"scheduled_until":"2025-01-02T00:00:00Z","status"`), "scheduled_for", "required with scheduled_until"},
		{"window reversed", base(`"status"`, `"scheduled_for":"2025-01-02T00:00:00Z","scheduled_until":"2025-01-01T00:00:00Z","status"`), "scheduled_until", "after scheduled_for"},
		{"window empty", base(`"status"`, `"scheduled_for":"2025-01-02T00:00:00Z","scheduled_until":"2025-01-02T00:00:00Z","status"`), "scheduled_until", "after scheduled_for"},
		{"window bad time", base(`"status"`, `"scheduled_for":"soon","status"`), "started_at/published_at", "RFC 3339"},
		{"cancelled incident", base(`"status"`, `"cancelled":true,"status"`), "cancelled", "only for a maintenance"},
		{"cancelled not completed", base(`"status":"resolved"`, `"status":"in_progress","cancelled":true,"scheduled_for":"2025-01-01T00:00:00Z","scheduled_until":"2025-01-02T00:00:00Z"`), "cancelled", "requires status completed"},
		{"cancelled not boolean", base(`"status"`, `"cancelled":"yes","status"`), "cancelled", "must be a boolean"},
	} {
		_, err := Decode([]byte(tc.input), 0)
		var fe FieldErrors
		if !errors.As(err, &fe) {
			t.Errorf("%s: error %v is not FieldErrors", tc.name, err)
			continue
		}
		found := false
		for _, f := range fe {
			if f.Field == tc.field && strings.Contains(f.Message, tc.message) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: got %v, want field %q with %q", tc.name, fe, tc.field, tc.message)
		}
	}
}

// TestDecodeMaintenance decodes the updates of a maintenance: announced
// with its window, then cancelled.
func TestDecodeMaintenance(t *testing.T) {
	t.Parallel()
	ev, err := Decode([]byte(maintenance), 0)
	if err != nil {
		t.Fatal(err)
	}
	from, until := time.Date(2025, 6, 1, 22, 0, 0, 0, time.UTC), time.Date(2025, 6, 2, 2, 0, 0, 0, time.UTC)
	if ev.Status != Scheduled || !ev.IsMaintenance() || ev.Cancelled ||
		ev.ScheduledFor == nil || !ev.ScheduledFor.Equal(from) || ev.ScheduledUntil == nil || !ev.ScheduledUntil.Equal(until) {
		t.Fatalf("decoded %+v", ev)
	}
	cancel := strings.Replace(strings.Replace(maintenance, `"scheduled"`, `"completed"`, 1), `"sequence":1`, `"sequence":2,"cancelled":true`, 1)
	ev, err = Decode([]byte(cancel), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Cancelled || ev.Status != Completed || !ev.Status.Closed() {
		t.Fatalf("decoded %+v", ev)
	}
	again, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"scheduled_for":"2025-06-02T00:00:00+02:00"`, `"scheduled_until":"2025-06-02T04:00:00+02:00"`, `"cancelled":true`} {
		if !strings.Contains(string(again), want) {
			t.Errorf("encoded %s lacks %s", again, want)
		}
	}
	plain, _ := Decode([]byte(valid), 0)
	if plain.IsMaintenance() {
		t.Error("an incident without a window counts as a maintenance")
	}
	if b, _ := json.Marshal(plain); strings.Contains(string(b), "scheduled_") || strings.Contains(string(b), "cancelled") {
		t.Errorf("an incident encodes maintenance fields: %s", b)
	}
}

const maintenance = `{"id":"MNT-7:1","incident_id":"MNT-7","sequence":1,"status":"scheduled","components":["payouts"],
"title":"Maintenance des virements / Payouts maintenance","body":"FR ... EN ...",
"scheduled_for":"2025-06-02T00:00:00+02:00","scheduled_until":"2025-06-02T04:00:00+02:00"}`

func TestDecodeTooLarge(t *testing.T) {
	t.Parallel()
	_, err := Decode([]byte(valid), 100)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 100 || tl.Size != len(valid) {
		t.Fatalf("got %v", err)
	}
}

// TestCorpus decodes every update of the real status-page history.
func TestCorpus(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../examples/incidents.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if _, err := Decode(sc.Bytes(), 0); err != nil {
			t.Errorf("line %d: %v", n, err)
		}
	}
	if n != 124 {
		t.Fatalf("read %d corpus lines, want 124", n)
	}
}

func TestPriority(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p, min Priority
		want   bool
	}{
		{P1, P3, true}, {P3, P3, true}, {P4, P3, false}, {"", P3, false}, {"", "", true}, {P4, "", true}, {P2, P1, false},
	} {
		if got := tc.p.AtLeast(tc.min); got != tc.want {
			t.Errorf("%q.AtLeast(%q) = %v", tc.p, tc.min, got)
		}
	}
	if Priority("P0").Valid() || Priority("p1").Valid() || !P4.Valid() {
		t.Error("Valid is wrong")
	}
	for i, s := range Statuses() {
		if s.Index() != i || !s.Valid() {
			t.Errorf("status %s index %d", s, s.Index())
		}
	}
	if len(Statuses()) > 8 {
		t.Error("statuses must fit a byte mask")
	}
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	c, err := NewCatalog(DefaultComponents())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Known("oney") || c.Known("nope") || c.Name("oney", "fr") != "Paiement Oney" || c.Name("nope", "fr") != "nope" {
		t.Fatal("catalog lookups wrong")
	}
	if c.Name("oney", "de", "it") != "Pagamenti Oney" {
		t.Fatal("locale fallback wrong")
	}
	if got := c.Unknown([]string{"oney", "x", "3ds"}); len(got) != 1 || got[0] != "x" {
		t.Fatalf("Unknown = %v", got)
	}
	for _, bad := range [][]Component{
		{{ID: "Bad Id"}},
		{{ID: "a"}, {ID: "a"}},
		{{ID: "a", Names: map[string]string{"not a tag!": "x"}}},
	} {
		if _, err := NewCatalog(bad); err == nil {
			t.Errorf("NewCatalog(%v) accepted it", bad)
		}
	}
}

// FuzzDecode: decoding arbitrary input never panics, and an accepted event
// re-encodes to an event that decodes to the same thing.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte(`{"id":"a:1","incident_id":"a","sequence":1,"status":"resolved","title":{"fr":"x"},"body":"y"}`))
	f.Add([]byte(`{"id":"","sequence":-1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(maintenance))
	f.Add([]byte(`{"id":"m:2","incident_id":"m","sequence":2,"status":"completed","cancelled":true,"title":"T","body":"B","scheduled_for":"2025-06-01T22:00:00Z","scheduled_until":"2025-06-02T02:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(data, 0)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("decoded event fails validation: %v", err)
		}
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(again, 0)
		if err != nil {
			t.Fatalf("re-encoded event rejected: %v\n%s", err, again)
		}
		if back.ID != ev.ID || back.Sequence != ev.Sequence || back.Title.String() != ev.Title.String() || back.Body.String() != ev.Body.String() ||
			back.Cancelled != ev.Cancelled || back.IsMaintenance() != ev.IsMaintenance() ||
			(ev.IsMaintenance() && (!back.ScheduledFor.Equal(*ev.ScheduledFor) || !back.ScheduledUntil.Equal(*ev.ScheduledUntil))) {
			t.Fatalf("round trip changed the event: %+v != %+v", back, ev)
		}
	})
}
