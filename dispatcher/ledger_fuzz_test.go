package dispatcher

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzScanProgressRecord checks the progress's record scanner against
// encoding/json: on records as appendRecord writes them, whatever their
// ids and free text, it reads the same fields; on any input it never
// panics.
func FuzzScanProgressRecord(f *testing.F) {
	f.Add("dlv_abc", "incident.update", "TSR-1:1", "webhook", "delivered", `"channel":"sms","outcome":"failed"`, []byte(`{"delivery_id":"x"}`))
	f.Add("dlv_é", "address.confirm", "e\"v", "email", "retry", "a\\b", []byte(`not json`))
	f.Fuzz(func(t *testing.T, id, kind, eventID, channel, outcome, reason string, raw []byte) {
		rec := Record{DeliveryID: id, Kind: kind, EventID: eventID, IncidentID: "INC", Sequence: 2, SubscriberID: "m1", EndpointID: "e1",
			Channel: channel, Attempt: 1, Outcome: Outcome(outcome), Reason: reason, At: time.Unix(1767225600, 0).UTC()}
		data := appendRecord(nil, &rec)
		var want Record
		if err := json.Unmarshal(data, &want); err != nil {
			return // not valid UTF-8 and the like: encoding/json rewrites it
		}
		got, ok := scanProgressRecord(data)
		if !ok || got.DeliveryID != want.DeliveryID || got.Kind != want.Kind || got.EventID != want.EventID ||
			got.Channel != want.Channel || got.Outcome != want.Outcome {
			t.Fatalf("scan of %s: %+v (%v), want %+v", data, got, ok, want)
		}
		// Any input: no panic; a record in the form Herald writes is read
		// as encoding/json reads it.
		got, ok = scanProgressRecord(raw)
		var back Record
		if json.Unmarshal(raw, &back) == nil && string(appendRecord(nil, &back)) == string(raw) &&
			(!ok || got.DeliveryID != back.DeliveryID || got.Outcome != back.Outcome || got.Channel != back.Channel || got.EventID != back.EventID) {
			t.Fatalf("scan of %q: %+v, encoding/json reads %+v", raw, got, back)
		}
	})
}

// FuzzParseLedgerTime: any input parses or is refused without panic; a
// time it accepts prints back to itself.
func FuzzParseLedgerTime(f *testing.F) {
	for _, s := range []string{"2026-03-01", "2026-03-01T10:00:00Z", "2026-03-01T10:00:00.123456789+02:00", "yesterday", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseLedgerTime(s)
		if err != nil {
			return
		}
		back, err := ParseLedgerTime(tm.Format(time.RFC3339Nano))
		if err != nil || !back.Equal(tm) {
			t.Fatalf("%q → %v → %v (%v)", s, tm, back, err)
		}
	})
}
