package dispatcher

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

// encodedJob is what the fan-out writes for one target.
func encodedJob(t testing.TB, eventID string) []byte {
	t.Helper()
	ev, err := incident.Decode([]byte(event("INC-1", 3, "identified")), 0)
	if err != nil {
		t.Fatal(err)
	}
	ev.ID = eventID
	enc, err := newJobEncoder(ev, 42, incident.P2)
	if err != nil {
		t.Fatal(err)
	}
	tg := subscribers.Target{SubscriberID: "m-1", EndpointID: "hook", Channel: "webhook"}
	return enc.encode(nil, DeliveryID(ev.ID, tg.SubscriberID, tg.EndpointID), tg)
}

func TestDecodeJobFastPathMatchesJSON(t *testing.T) {
	data := encodedJob(t, "evt-1")
	if _, ok := scanUpdateJob(data); !ok {
		t.Fatalf("the encoder's output does not take the fast path: %s", data)
	}
	got, err := decodeJob(data)
	if err != nil {
		t.Fatal(err)
	}
	want := &Job{ID: DeliveryID("evt-1", "m-1", "hook"), Kind: KindUpdate, EventID: "evt-1", IncidentID: "INC-1", Sequence: 3,
		StreamSeq: 42, Priority: incident.P2, SubscriberID: "m-1", EndpointID: "hook", Channel: "webhook"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeJob = %+v, want %+v", got, want)
	}
}

func TestDecodeJob(t *testing.T) {
	notice := `{"id":"dlv_x","kind":"endpoint.disabled","event":"e","sub":"m","ep":"mail","ch":"email","notice":{"endpoint":"hook","channel":"webhook","reason":"410","at":"2026-01-02T03:04:05Z"}}`
	for _, tc := range []struct {
		name, data, err string
	}{
		{"escaped event id, slow path", strings.Replace(string(encodedJob(t, "evt-1")), `"evt-1"`, `"evt\u002d1"`, 1), ""},
		{"keys in another order", `{"ch":"webhook","ep":"e","sub":"m","id":"dlv_x","prio":"P3","eseq":1,"seq":1,"incident":"I","event":"e","kind":"incident.update"}`, ""},
		{"notice job", notice, ""},
		{"not JSON", `{"kind":`, "job: unexpected end of JSON input"},
		{"leading zero", strings.Replace(string(encodedJob(t, "evt-1")), `"eseq":42`, `"eseq":042`, 1), "job: invalid character '4' after object key:value pair"},
		{"eseq overflow", strings.Replace(string(encodedJob(t, "evt-1")), `"eseq":42`, `"eseq":18446744073709551616`, 1), "job: json: cannot unmarshal number 18446744073709551616 into Go struct field Job.eseq of type uint64"},
		{"missing subscriber", `{"id":"dlv_x","kind":"incident.update","event":"e","ep":"e","ch":"webhook","eseq":1,"incident":"I"}`, "job: missing id, event, subscriber, endpoint or channel"},
		{"update without stream sequence", `{"id":"dlv_x","kind":"incident.update","event":"e","sub":"m","ep":"e","ch":"webhook","incident":"I"}`, "job: update job without its update reference"},
		{"notice without notice", `{"id":"dlv_x","kind":"endpoint.disabled","event":"e","sub":"m","ep":"e","ch":"email"}`, "job: notice job without its notice"},
		{"unknown kind", `{"id":"dlv_x","kind":"other","event":"e","sub":"m","ep":"e","ch":"email"}`, `job: unknown kind "other"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := decodeJob([]byte(tc.data))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want Job
			if err := json.Unmarshal([]byte(tc.data), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(j, &want) {
				t.Errorf("decodeJob = %+v, want %+v", j, want)
			}
		})
	}
}

// FuzzScanUpdateJob checks the fast path against encoding/json: whatever it
// accepts, encoding/json decodes to the same job.
func FuzzScanUpdateJob(f *testing.F) {
	f.Add(encodedJob(f, "evt-1"))
	f.Add(encodedJob(f, "évènement"))
	f.Add([]byte(`{"kind":"incident.update","event":"e","incident":"I","seq":0,"eseq":1,"prio":"P1","id":"d","sub":"s","ep":"e","ch":"webhook"}`))
	f.Add([]byte(`{"kind":"incident.update","event":"e","incident":"I","seq":01,"eseq":1,"prio":"P1","id":"d","sub":"s","ep":"e","ch":"webhook"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := scanUpdateJob(data)
		if !ok {
			return
		}
		var want Job
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, data)
		}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("fast path %+v, encoding/json %+v, for %q", got, want, data)
		}
	})
}

func BenchmarkDecodeJob(b *testing.B) {
	data := encodedJob(b, "evt-1")
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeJob(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var j Job
			if err := json.Unmarshal(data, &j); err != nil {
				b.Fatal(err)
			}
		}
	})
}
