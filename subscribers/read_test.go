package subscribers

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readAll(t *testing.T, data string, f Format) []Record {
	t.Helper()
	var out []Record
	if err := Read(strings.NewReader(data), f, func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return out
}

func TestReadJSONL(t *testing.T) {
	data := "\ufeff# merchants\n" +
		`{"id":"m1","locale":"fr","endpoints":[{"id":"e","channel":"email","address":"a@b.example"}]}` + "\n" +
		"\n" +
		`{"id":"m2","locale":"fr","colour":"blue","endpoints":[]}` + "\n" +
		`{"id":"m3","locale":` + "\n" +
		`{"id":"m4","locale":"fr","min_priority":1,"endpoints":[]}` + "\n" +
		`{"id":"m5","locale":"it","endpoints":[{"id":"w","channel":"webhook","url":"https://x.example","secret":"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}` // no final newline
	recs := readAll(t, data, JSONL)
	type want struct {
		line int
		id   string
		err  string
	}
	wants := []want{{2, "m1", ""}, {4, "", "colour: unknown field"}, {5, "", "truncated"}, {6, "", "min_priority: must be a JSON string"}, {7, "m5", ""}}
	if len(recs) != len(wants) {
		t.Fatalf("got %d records: %+v", len(recs), recs)
	}
	for i, w := range wants {
		r := recs[i]
		if r.Line != w.line {
			t.Errorf("record %d: line %d, want %d", i, r.Line, w.line)
		}
		if w.err != "" {
			if r.Err == nil || !strings.Contains(r.Err.Error(), w.err) {
				t.Errorf("line %d: err %v, want %q", r.Line, r.Err, w.err)
			}
			continue
		}
		if r.Err != nil || r.Subscriber.ID != w.id {
			t.Errorf("line %d: %+v", r.Line, r)
		}
	}
	if recs[4].Subscriber.Endpoints[0].Secret.Reveal() != "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" {
		t.Error("secret not read")
	}
}

func TestReadJSONLLongLine(t *testing.T) {
	long := `{"id":"` + strings.Repeat("x", MaxLineBytes+10) + `"}`
	data := long + "\n" + `{"id":"m1","locale":"fr","endpoints":[]}` + "\n"
	recs := readAll(t, data, JSONL)
	if len(recs) != 2 || recs[0].Err == nil || recs[1].Subscriber == nil || recs[1].Line != 2 {
		t.Fatalf("records = %+v", recs)
	}
}

func TestReadCSV(t *testing.T) {
	data := "id,name,locale,timezone,components,min_priority,endpoint_id,channel,address,url,secret,quiet_hours\n" +
		"m1,Boulangerie Dupont,fr-FR,Europe/Paris,3ds;nexo-terminals,P3,mail,email,ops@dupont.example,,,\n" +
		"m1,,,,,,sms,sms,+33612345678,,,22:00-07:00\n" +
		"m2,\"Pizzeria, Roma\",it-IT,Europe/Rome,,,,webhook,,https://roma.example/h,whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,\n" +
		"m3,Bad,fr,,,,,sms,+33612345678,,,22h\n" +
		"m3,Bad,fr,,,,,email,x@y.example,,,\n" +
		"m4,\"unterminated,fr\n"
	recs := readAll(t, data, CSV)
	if len(recs) != 4 {
		t.Fatalf("got %d records: %+v", len(recs), recs)
	}
	m1 := recs[0].Subscriber
	if recs[0].Line != 2 || m1 == nil || len(m1.Endpoints) != 2 || m1.Endpoints[1].QuietHours.End != "07:00" ||
		strings.Join(m1.Components, ",") != "3ds,nexo-terminals" {
		t.Fatalf("m1 = %+v", recs[0])
	}
	if err := testRules(t).Normalize(m1); err != nil {
		t.Errorf("m1 invalid: %v", err)
	}
	if m2 := recs[1].Subscriber; m2 == nil || m2.Name != "Pizzeria, Roma" || m2.Endpoints[0].ID != "e1" {
		t.Fatalf("m2 = %+v", recs[1])
	}
	if recs[2].Err == nil || recs[2].Line != 5 || !strings.Contains(recs[2].Err.Error(), "quiet_hours") {
		t.Errorf("m3 = %+v", recs[2])
	}
	if recs[3].Err == nil {
		t.Errorf("unterminated quote not reported: %+v", recs[3])
	}
}

func TestReadCSVHeader(t *testing.T) {
	for _, h := range []string{"id,locale,channel,colour\n", "id,locale\n", "id,id,locale,channel\n"} {
		err := Read(strings.NewReader(h), CSV, func(Record) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "csv header") {
			t.Errorf("header %q: err = %v", h, err)
		}
	}
	stop := errors.New("stop")
	err := Read(strings.NewReader("id,locale,channel\nm1,fr,email\nm2,fr,email\n"), CSV, func(Record) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("callback error not returned: %v", err)
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name, head string
		want       Format
	}{
		{"subs.csv", "{", CSV},
		{"subs.jsonl", "id,locale", JSONL},
		{"subs.txt", "  \n{\"id\":1}", JSONL},
		{"-", "id,locale,channel", CSV},
	}
	for _, tt := range tests {
		if got := DetectFormat(tt.name, []byte(tt.head)); got != tt.want {
			t.Errorf("DetectFormat(%q) = %v", tt.name, got)
		}
	}
}

// TestExamples checks that the example files shipped with Herald are valid.
func TestExamples(t *testing.T) {
	for _, name := range []string{"subscribers.jsonl", "subscribers.csv"} {
		path := filepath.Join("..", "examples", name)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = Read(f, DetectFormat(path, nil), func(r Record) error {
			if r.Err != nil {
				t.Errorf("%s line %d: %v", name, r.Line, r.Err)
				return nil
			}
			if err := testRules(t).Normalize(r.Subscriber); err != nil {
				t.Errorf("%s line %d: %v", name, r.Line, err)
			}
			n++
			return nil
		})
		f.Close()
		if err != nil || n < 3 {
			t.Errorf("%s: %d subscribers, %v", name, n, err)
		}
	}
}

// FuzzRead feeds arbitrary files to both readers: no panic, line numbers
// increase, every record has either a subscriber or an error.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"id":"m1","locale":"fr","endpoints":[]}`+"\n#x\n{"), true)
	f.Add([]byte("id,locale,channel,quiet_hours\nm1,fr,sms,22:00-07:00\nm1,fr,email,\n\"x"), false)
	f.Fuzz(func(t *testing.T, data []byte, jsonl bool) {
		format := CSV
		if jsonl {
			format = JSONL
		}
		last := 0
		_ = Read(strings.NewReader(string(data)), format, func(r Record) error {
			if (r.Subscriber == nil) == (r.Err == nil) {
				t.Fatalf("record with both or neither: %+v", r)
			}
			if r.Line < last {
				t.Fatalf("line went back from %d to %d", last, r.Line)
			}
			last = r.Line
			return nil
		})
	})
}

// TestParseJSONKeysMatchExactly: a key in another case, or repeated, at
// any depth, is refused with its path; a UTF-8 byte order mark is skipped.
func TestParseJSONKeysMatchExactly(t *testing.T) {
	t.Parallel()
	const good = `{"id":"m1","locale":"fr-FR","endpoints":[{"id":"e1","channel":"email","address":"a@b.example"}]}`
	if _, err := ParseJSON([]byte(good)); err != nil {
		t.Fatalf("the subscriber itself: %v", err)
	}
	for _, tc := range []struct{ name, data, field, msg string }{
		{"renaming second id", strings.Replace(good, `"locale"`, `"ID":"m2","locale"`, 1), "ID", `case-sensitive: "id"`},
		{"repeated id", strings.Replace(good, `"locale"`, `"id":"m2","locale"`, 1), "id", "duplicate key"},
		{"endpoint key case", strings.Replace(good, `"address"`, `"Address"`, 1), "endpoints[0].Address", `case-sensitive: "address"`},
		{"repeated endpoint key", strings.Replace(good, `"channel":"email"`, `"channel":"email","channel":"sms"`, 1), "endpoints[0].channel", "duplicate key"},
	} {
		_, err := ParseJSON([]byte(tc.data))
		var fe FieldErrors
		if !errors.As(err, &fe) || fe[0].Field != tc.field || !strings.Contains(fe[0].Message, tc.msg) {
			t.Errorf("%s: %v, want %s: …%s", tc.name, err, tc.field, tc.msg)
		}
	}
	if s, err := ParseJSON([]byte("\ufeff" + good)); err != nil || s.ID != "m1" {
		t.Errorf("with a byte order mark: %v", err)
	} // Data after the object is refused, a stray closing brace included.
	for _, tail := range []string{"}", "]", `{"id":"m2"}`, " x"} {
		if _, err := ParseJSON([]byte(good + tail)); err == nil || !strings.Contains(err.Error(), "after the JSON object") {
			t.Errorf("with %q after the object: %v", tail, err)
		}
	}
}
