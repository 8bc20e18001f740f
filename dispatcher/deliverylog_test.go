package dispatcher

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
)

func TestAppendRecordMatchesJSON(t *testing.T) {
	next := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	at := time.Date(2026, 3, 4, 5, 6, 7, 123_456_789, time.FixedZone("CET", 3600))
	full := Record{
		DeliveryID: "dlv_abc", Kind: KindUpdate, EventID: "evt-1", IncidentID: "INC-1", Sequence: 7,
		SubscriberID: "m-1", EndpointID: "hook", Channel: "webhook", Attempt: 3, Outcome: Retrying,
		Reason: `webhook h.example: 503 "busy" <html> & more`, Status: 503, Code: "E1", ProviderID: "SM1", BodySHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Action: "disable_endpoint",
		NextAttemptAt: &next, Locale: "fr", Requested: "fr-CA", Fallback: true, DurationMS: 12.345, At: at,
	}
	// "every field" must set every field: one added to Record and not to
	// appendRecord fails here.
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("the full record leaves %s zero", v.Type().Field(i).Name)
		}
	}
	for _, tc := range []struct {
		name string
		rec  Record
	}{
		{"zero", Record{}},
		{"delivered", Record{DeliveryID: "dlv_x", Kind: KindUpdate, EventID: "e", SubscriberID: "s", EndpointID: "e", Channel: "email", Attempt: 1, Outcome: Delivered, Status: 250, DurationMS: 0.5, At: at}},
		{"every field", full},
		{"unicode and controls", Record{Reason: "réseau\u2028indisponible\n\x00\xff", EventID: "é", At: at}},
		{"tiny duration", Record{DurationMS: 1e-7, At: at}},
		{"huge duration", Record{DurationMS: 1e22, At: at}},
		{"negative", Record{Sequence: -1, Attempt: -2, Status: -3, DurationMS: -0.25, At: at}},
		{"year out of range", Record{At: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(&tc.rec)
			got := appendRecord(nil, &tc.rec)
			if err != nil {
				want = []byte("(error)")
				if json.Valid(got) {
					return // encoding/json refuses; ours stays valid JSON
				}
			}
			if string(got) != string(want) {
				t.Errorf("appendRecord:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// FuzzAppendRecord checks the record encoder against encoding/json over
// the free-text and numeric fields.
func FuzzAppendRecord(f *testing.F) {
	f.Add("evt-1", "timeout after 15s", "fr-CA", int64(3), 503, 1.5, int64(1767225600))
	f.Add("é<>&", "a\"b\\c\u2028\x01", "", int64(0), 0, 1e-9, int64(0))
	f.Fuzz(func(t *testing.T, eventID, reason, locale string, seq int64, status int, dur float64, unix int64) {
		if math.IsNaN(dur) || math.IsInf(dur, 0) {
			return
		}
		rec := Record{EventID: eventID, Reason: reason, Requested: locale, Sequence: seq, Status: status, DurationMS: dur,
			At: time.Unix(unix%(1<<34), unix%1e9).UTC()}
		want, err := json.Marshal(&rec)
		if err != nil {
			return
		}
		if got := appendRecord(nil, &rec); string(got) != string(want) {
			t.Fatalf("appendRecord:\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkAppendRecord(b *testing.B) {
	rec := Record{DeliveryID: "dlv_abcdefghijklmnopqrstuvwxyz", Kind: KindUpdate, EventID: "evt-1", IncidentID: "INC-1", Sequence: 2,
		SubscriberID: "m000001", EndpointID: "wh", Channel: "webhook", Attempt: 1, Outcome: Delivered, Status: 204,
		Locale: "fr", Requested: "fr-FR", DurationMS: 1.234, At: time.Now()}
	b.Run("appendRecord", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = appendRecord(buf[:0], &rec)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(&rec)
		}
	})
}

// TestDoneSeesEarlierReceipt: an SMS whose receipt arrived before its
// failed attempt was recorded is over; a delivery with only failures is not.
func TestDoneSeesEarlierReceipt(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	put := func(id string, outcomes ...Outcome) {
		for i, o := range outcomes {
			if err := b.d.log.append(b.ctx, &Record{DeliveryID: id, IncidentID: "INC", SubscriberID: "m_sms", EndpointID: "sms", Channel: channels.SMS, Attempt: i + 1, Outcome: o, At: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	put("dlv_receipt", Receipt, Retrying)
	put("dlv_failing", Retrying, Retrying)
	for _, tc := range []struct {
		id   string
		want Outcome
	}{{"dlv_receipt", Receipt}, {"dlv_failing", ""}, {"dlv_none", ""}} {
		got, _, err := b.d.log.done(b.ctx, "INC", "m_sms", tc.id, channels.SMS, false)
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (tc.want == "") || (got != nil && got.Outcome != tc.want) {
			t.Errorf("done(%s) = %+v, want outcome %q", tc.id, got, tc.want)
		}
	}
}

// TestReadersLeaveNoConsumer: reading the delivery log (the API, the SMS
// redelivery check) and the dead letters deletes the consumer each read
// opens. The server allows 1 000 consumers per stream by default, and an
// ordered consumer left behind lives on for minutes: a polled API would
// soon make every read fail.
func TestReadersLeaveNoConsumer(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	if err := b.d.log.append(b.ctx, &Record{DeliveryID: "dlv_1", SubscriberID: "m1", EndpointID: "wh", Channel: channels.Webhook, Attempt: 1, Outcome: Delivered, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := b.d.dlq.add(b.ctx, deliverySubject(channels.Webhook), []byte("{}"), "dlv_2", "test", 1); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if recs := b.records("m1"); len(recs) != 1 {
			t.Fatalf("records %+v", recs)
		}
		if dls, err := b.d.dlq.List(b.ctx, 0, 10); err != nil || len(dls) != 1 {
			t.Fatalf("dead letters %+v, %v", dls, err)
		}
	}
	// An ordered consumer that restarts deletes its previous consumer in
	// the background: give that a moment, far below the 30 s they would
	// otherwise live.
	for _, s := range []jetstream.Stream{b.d.topo.DeliveryLog, b.d.topo.DeadLetters} {
		b.waitFor("the readers' consumers to go", 5*time.Second, func() bool {
			info, err := s.Info(b.ctx)
			return err == nil && info.State.Consumers == 0
		})
	}
}
