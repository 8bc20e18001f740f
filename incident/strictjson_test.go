package incident

import (
	"errors"
	"strings"
	"testing"
)

// TestDecodeKeysMatchExactly: encoding/json takes "ID" for "id" and keeps
// the last of repeated keys, so a second key renamed an event; Decode
// refuses both, at any depth, naming the key, and skips a UTF-8 byte order
// mark.
func TestDecodeKeysMatchExactly(t *testing.T) {
	t.Parallel()
	const good = `{"id":"E-1:1","incident_id":"E-1","sequence":1,"status":"investigating","title":{"fr":"Panne","en":"Outage"},"body":"Texte"}`
	if _, err := Decode([]byte(good), 0); err != nil {
		t.Fatalf("the event itself: %v", err)
	}
	for _, tc := range []struct {
		name, data, field, msg string
	}{
		{"key in another case", strings.Replace(good, `"id":"E-1:1"`, `"ID":"E-1:1"`, 1), "ID", `case-sensitive: "id"`},
		{"renaming second id", strings.Replace(good, `"sequence":1`, `"sequence":1,"ID":"E-2:1"`, 1), "ID", `case-sensitive: "id"`},
		{"repeated key", strings.Replace(good, `"sequence":1`, `"sequence":1,"id":"E-2:1"`, 1), "id", "duplicate key"},
		{"repeated locale", strings.Replace(good, `"en":"Outage"`, `"en":"Outage","fr":"Autre"`, 1), "title.fr", "duplicate key"},
		{"repeated status", strings.Replace(good, `"body":"Texte"`, `"body":"Texte","status":"resolved"`, 1), "status", "duplicate key"},
	} {
		_, err := Decode([]byte(tc.data), 0)
		var fe FieldErrors
		if !errors.As(err, &fe) || fe[0].Field != tc.field || !strings.Contains(fe[0].Message, tc.msg) {
			t.Errorf("%s: %v, want %s: …%s", tc.name, err, tc.field, tc.msg)
		}
	}
	ev, err := Decode([]byte("\ufeff"+good), 0)
	if err != nil || ev.ID != "E-1:1" {
		t.Errorf("with a byte order mark: %v", err)
	}
}

// TestDecodeRefusesURLsThatCannotBeLinked: a URL with a quote, an angle
// bracket or another character that cannot appear raw was accepted, then
// left out of every message; it is refused, naming the field.
func TestDecodeRefusesURLsThatCannotBeLinked(t *testing.T) {
	t.Parallel()
	ev := func(u string) string {
		return `{"id":"E-1:1","incident_id":"E-1","sequence":1,"status":"investigating","title":"T","body":"B","url":` + quote(u) + `}`
	}
	for _, u := range []string{
		`https://status.example.com/i/1"onmouseover="x`, "https://status.example.com/<script>", "https://status.example.com/it's",
		"https://status.example.com/a b", "https://status.example.com/a\\b", "https://status.example.com/`x`",
		"https://status.example.com/{x}", "https://status.example.com/é", "https://status.example.com/a|b", "https://status.example.com/a^b",
	} {
		_, err := Decode([]byte(ev(u)), 0)
		var fe FieldErrors
		if !errors.As(err, &fe) || fe[0].Field != "url" || !strings.Contains(fe[0].Message, "percent-encode") {
			t.Errorf("%q: %v", u, err)
		}
	}
	for _, u := range []string{
		"https://status.example.com/incidents/TSR-1610?lang=fr&x=1#top", "https://status.example.com/%C3%A9t%C3%A9", "http://[2001:db8::1]:8080/a;b=c",
	} {
		if _, err := Decode([]byte(ev(u)), 0); err != nil {
			t.Errorf("%q refused: %v", u, err)
		}
	}
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// FuzzCheckKeys: CheckKeys never panics, and on a document Decode accepts
// it finds nothing.
func FuzzCheckKeys(f *testing.F) {
	f.Add([]byte(`{"id":"E-1:1","incident_id":"E-1","sequence":1,"status":"investigating","title":{"fr":"a"},"body":"b"}`))
	f.Add([]byte(`{"id":1,"id":2,"components":[{"a":1,"a":2}],"title":{"x":{"y":[1,{"z":1,"z":2}]}}}`))
	f.Add([]byte(`[{"ID":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev Event
		err := CheckKeys(data, &ev)
		if _, derr := Decode(data, 0); derr == nil && err != nil {
			t.Fatalf("Decode accepted what CheckKeys refused: %v", err)
		}
	})
}
