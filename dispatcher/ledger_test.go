package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/internal/natstest"
	"github.com/heraldhq/herald/secret"
)

// logFixture is a delivery log filled directly, as the engine writes it,
// on an embedded JetStream server.
type logFixture struct {
	ctx  context.Context
	js   jetstream.JetStream
	topo *Topology
	// stored are the records as stored, with their stream timestamp.
	stored []storedRecord
}

type storedRecord struct {
	rec Record
	seq uint64
	ts  time.Time
}

func newLogFixture(t *testing.T) *logFixture {
	t.Helper()
	_, js := natstest.Connect(t)
	topo, err := Setup(t.Context(), js, Config{SecretKey: secret.Value(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	return &logFixture{ctx: t.Context(), js: js, topo: topo}
}

// append stores recs in order, and the incident snapshots they name.
func (f *logFixture) append(t *testing.T, recs ...Record) {
	t.Helper()
	for i := range recs {
		r := &recs[i]
		if r.IncidentID != "" {
			snap := fmt.Sprintf(`{"incident_id":%q,"latest_sequence":2,"updates":[{"sequence":1,"event_id":"%[1]s:1","state":"done"},{"sequence":2,"event_id":"%[1]s:2","state":"done"}]}`, r.IncidentID)
			if _, err := f.topo.Snapshots.Put(f.ctx, r.IncidentID, []byte(snap)); err != nil {
				t.Fatal(err)
			}
		}
		ack, err := f.js.PublishMsg(f.ctx, recordMsg(r))
		if err != nil {
			t.Fatal(err)
		}
		msg, err := f.topo.DeliveryLog.GetMsg(f.ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		var back Record
		if err := json.Unmarshal(msg.Data, &back); err != nil {
			t.Fatal(err)
		}
		f.stored = append(f.stored, storedRecord{rec: back, seq: ack.Sequence, ts: msg.Time})
	}
}

// export runs a ledger export and returns its rows.
func (f *logFixture) export(t *testing.T, lf LedgerFilter) []LedgerRow {
	t.Helper()
	var rows []LedgerRow
	n, err := NewLedger(f.topo).Export(f.ctx, lf, func(r *LedgerRow) error {
		rows = append(rows, *r)
		return nil
	})
	if err != nil {
		t.Fatalf("export %+v: %v", lf, err)
	}
	if n != len(rows) {
		t.Fatalf("export says %d rows, emitted %d", n, len(rows))
	}
	return rows
}

// naive folds every stored record in memory: what the ledger must give.
func (f *logFixture) naive(lf LedgerFilter) map[string]LedgerRow {
	type entry struct {
		row     LedgerRow
		firstTS time.Time
		first   *Record
	}
	byID := map[string]*entry{}
	var order []string
	for _, s := range f.stored {
		e := byID[s.rec.DeliveryID]
		if e == nil {
			rec := s.rec
			e = &entry{firstTS: s.ts, first: &rec}
			byID[s.rec.DeliveryID] = e
			order = append(order, s.rec.DeliveryID)
		}
		e.row.fold(&s.rec)
	}
	out := map[string]LedgerRow{}
	for _, id := range order {
		e := byID[id]
		if lf.IncidentID != "" && e.first.IncidentID != lf.IncidentID {
			continue
		}
		if !lf.keeps(e.first, e.firstTS) {
			continue
		}
		out[id] = e.row
	}
	return out
}

// randomHistories returns the records of n deliveries, interleaved as
// concurrent deliveries interleave: retries, deferrals, receipts after a
// send, recalls, skips.
func randomHistories(rng *rand.Rand, n int) []Record {
	histories := [][]Record{}
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for i := range n {
		inc := fmt.Sprintf("INC-%d", i%3)
		seq := int64(1 + i%2)
		ev := fmt.Sprintf("%s:%d", inc, seq)
		sub := fmt.Sprintf("m%02d", i%7)
		ep := []string{"mail", "sms", "wh"}[i%3]
		ch := []string{channels.Email, channels.SMS, channels.Webhook}[i%3]
		base := Record{DeliveryID: DeliveryID(ev, sub, ep+fmt.Sprint(i)), Kind: KindUpdate, EventID: ev, IncidentID: inc, Sequence: seq,
			SubscriberID: sub, EndpointID: ep + fmt.Sprint(i), Channel: ch, Locale: "fr", Requested: "fr-FR"}
		var h []Record
		at := start.Add(time.Duration(i) * time.Second)
		add := func(o Outcome, attempt int, mod func(*Record)) {
			r := base
			r.Outcome, r.Attempt, r.At = o, attempt, at
			if mod != nil {
				mod(&r)
			}
			h = append(h, r)
			at = at.Add(time.Minute)
		}
		sum := func(k int) func(*Record) {
			return func(r *Record) { r.BodySHA256 = channels.HashBody(fmt.Appendf(nil, "%s/%d", r.DeliveryID, k)) }
		}
		switch rng.IntN(8) {
		case 0: // delivered at once
			add(Delivered, 1, sum(1))
		case 1: // retried, then delivered
			add(Retrying, 1, sum(1))
			add(Retrying, 2, sum(2))
			add(Delivered, 3, sum(3))
		case 2: // refused for good
			add(Failed, 1, func(r *Record) { sum(1)(r); r.Status, r.Reason, r.Action = 410, "=gone", "disable_endpoint" })
		case 3: // sent, then receipts
			add(Delivered, 1, func(r *Record) { sum(1)(r); r.ProviderID = "SM" + fmt.Sprint(i) })
			add(Receipt, 1, func(r *Record) { r.Reason = "sent" })
			add(Receipt, 1, func(r *Record) { r.Reason = "undelivered: sms: 30003 unreachable" })
		case 4: // deferred, then recalled
			add(Deferred, 1, func(r *Record) { r.Reason = "quiet hours" })
			add(Recalled, 1, func(r *Record) { r.Reason = "recalled" })
		case 5: // still retrying
			add(Retrying, 1, sum(1))
		case 6: // skipped
			add(Suppressed, 1, func(r *Record) { r.Locale, r.Requested = "", "" })
		case 7: // exhausted, replayed, delivered; a recall too late changes nothing
			add(Retrying, 1, sum(1))
			add(DeadLettered, 2, sum(2))
			add(Delivered, 1, sum(3))
			add(Recalled, 1, nil)
		}
		histories = append(histories, h)
	}
	// Interleave: take the next record of a random history each time.
	var out []Record
	for len(histories) > 0 {
		k := rng.IntN(len(histories))
		out = append(out, histories[k][0])
		if histories[k] = histories[k][1:]; len(histories[k]) == 0 {
			histories = slices.Delete(histories, k, k+1)
		}
	}
	return out
}

// TestLedgerFoldsLikeAnInMemoryFold: the streaming two-pass export gives,
// for every filter, exactly the rows an in-memory fold of every record
// gives.
func TestLedgerFoldsLikeAnInMemoryFold(t *testing.T) {
	t.Parallel()
	f := newLogFixture(t)
	rng := rand.New(rand.NewPCG(1, 2))
	recs := randomHistories(rng, 150)
	// A notice (no incident) and a record of the first round's subjects.
	recs = append(recs,
		Record{DeliveryID: "dlv_notice", Kind: "address.confirm", EventID: "address.confirm:m01:mail", SubscriberID: "m01", EndpointID: "mail", Channel: channels.Email, Attempt: 1, Outcome: Outboxed, BodySHA256: channels.HashBody([]byte("n")), At: time.Now().UTC()},
	)
	f.append(t, recs...)
	legacy := Record{DeliveryID: "dlv_legacy", Kind: KindUpdate, EventID: "OLD-1:1", SubscriberID: "m01", EndpointID: "wh", Channel: channels.Webhook, Attempt: 1, Outcome: Delivered, At: time.Now().UTC()}
	ack, err := f.js.Publish(f.ctx, subjDeliveryLog+"m01.dlv_legacy", appendRecord(nil, &legacy))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := f.topo.DeliveryLog.GetMsg(f.ctx, ack.Sequence)
	f.stored = append(f.stored, storedRecord{rec: legacy, seq: ack.Sequence, ts: msg.Time})

	mid := f.stored[len(f.stored)/3].ts
	late := f.stored[2*len(f.stored)/3].ts
	for _, lf := range []LedgerFilter{
		{},
		{IncidentID: "INC-1"},
		{SubscriberID: "m01"},
		{IncidentID: "INC-2", SubscriberID: "m03"},
		{EventID: "INC-0:2"},
		{IncidentID: "INC-0", EventID: "INC-0:1"},
		{Since: mid},
		{Until: mid},
		{Since: mid, Until: late},
		{SubscriberID: "m04", Since: mid},
		{IncidentID: "NONE"},
		{Since: time.Now().Add(time.Hour)},
	} {
		t.Run(fmt.Sprintf("%+v", lf), func(t *testing.T) {
			got := f.export(t, lf)
			want := f.naive(lf)
			seen := map[string]bool{}
			for _, r := range got {
				if seen[r.DeliveryID] {
					t.Errorf("delivery %s exported twice", r.DeliveryID)
				}
				seen[r.DeliveryID] = true
				if w, ok := want[r.DeliveryID]; !ok {
					t.Errorf("row %s is not selected by the filter", r.DeliveryID)
				} else if !reflect.DeepEqual(r, w) {
					t.Errorf("row %s:\n got %+v\nwant %+v", r.DeliveryID, r, w)
				}
			}
			for id := range want {
				if !seen[id] {
					t.Errorf("row %s missing", id)
				}
			}
			if len(want) == 0 && lf.IncidentID == "" && lf.Since.IsZero() {
				t.Error("the filter selects nothing: the case tests nothing")
			}
		})
	}
}

// TestLedgerRowFold checks the fold on the histories that matter.
func TestLedgerRowFold(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	rec := func(o Outcome, attempt int, mins int, mod ...func(*Record)) Record {
		r := Record{DeliveryID: "dlv_1", Kind: KindUpdate, EventID: "E:1", IncidentID: "E", Sequence: 1, SubscriberID: "m", EndpointID: "e",
			Channel: channels.SMS, Attempt: attempt, Outcome: o, At: at.Add(time.Duration(mins) * time.Minute)}
		for _, m := range mod {
			m(&r)
		}
		return r
	}
	hash := func(h string) func(*Record) { return func(r *Record) { r.BodySHA256 = h } }
	for _, tc := range []struct {
		name string
		recs []Record
		want func(*LedgerRow) string
	}{
		{"retried then delivered keeps the delivered attempt's hash",
			[]Record{rec(Retrying, 1, 0, hash("a")), rec(Delivered, 2, 5, hash("b"))},
			func(r *LedgerRow) string {
				if r.Outcome != Delivered || !r.Final || r.Attempts != 2 || r.BodySHA256 != "b" || !r.FirstAttemptAt.Equal(at) || !r.OutcomeAt.Equal(at.Add(5*time.Minute)) {
					return fmt.Sprintf("%+v", r)
				}
				return ""
			}},
		{"a receipt before the failed attempt it belongs to means sent",
			[]Record{rec(Receipt, 1, 1, func(r *Record) { r.Reason = "delivered"; r.ProviderID = "SM1" }), rec(Retrying, 1, 2)},
			func(r *LedgerRow) string {
				if r.Outcome != Delivered || r.Receipt != "delivered" || r.ProviderID != "SM1" {
					return fmt.Sprintf("%+v", r)
				}
				return ""
			}},
		{"undelivered receipt after a send",
			[]Record{rec(Delivered, 1, 0, func(r *Record) { r.ProviderID = "SM2" }), rec(Receipt, 1, 3, func(r *Record) { r.Reason = "undelivered: sms: 30003: unreachable" })},
			func(r *LedgerRow) string {
				if r.Outcome != Delivered || r.Receipt != "undelivered" || r.ReceiptAt == nil || !r.ReceiptAt.Equal(at.Add(3*time.Minute)) {
					return fmt.Sprintf("%+v", r)
				}
				return ""
			}},
		{"a recall after the send changes nothing",
			[]Record{rec(Outboxed, 1, 0, hash("c")), rec(Recalled, 1, 1)},
			func(r *LedgerRow) string {
				if r.Outcome != Outboxed || r.BodySHA256 != "c" || r.Records != 2 {
					return fmt.Sprintf("%+v", r)
				}
				return ""
			}},
		{"deferred then recalled is final",
			[]Record{rec(Deferred, 1, 0), rec(Recalled, 1, 1)},
			func(r *LedgerRow) string {
				if r.Outcome != Recalled || !r.Final {
					return fmt.Sprintf("%+v", r)
				}
				return ""
			}},
		{"still retrying is not final",
			[]Record{rec(Retrying, 1, 0)},
			func(r *LedgerRow) string {
				if r.Outcome != Retrying || r.Final {
					return fmt.Sprintf("%+v", r)
				}
				return ""
			}},
		{"dead-lettered is final until replayed",
			[]Record{rec(Retrying, 1, 0), rec(DeadLettered, 2, 1)},
			func(r *LedgerRow) string {
				if r.Outcome != DeadLettered || !r.Final || r.Attempts != 2 {
					return fmt.Sprintf("%+v", r)
				}
				return ""
			}},
	} {
		var r LedgerRow
		for i := range tc.recs {
			r.fold(&tc.recs[i])
		}
		if p := tc.want(&r); p != "" {
			t.Errorf("%s: %s", tc.name, p)
		}
	}
}
