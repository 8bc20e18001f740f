package dispatcher

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/internal/natstest"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
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

// TestLedgerExportOverTheCorpus publishes the whole corpus to merchants on
// every channel: emails to the outbox, SMS through a Twilio-shaped server
// whose signed receipts come back (delivered, and undelivered for one
// number), webhooks to a receiver that refuses one merchant for good (410,
// a hard bounce) and makes another's first attempt fail. The ledger has
// exactly one row per notification the fan-out made; each row's hash is
// that of the bytes the outbox file, the receiver or Twilio got, byte for
// byte; receipts, bounces, retries and languages are where they belong;
// the CSV export holds the same rows.
func TestLedgerExportOverTheCorpus(t *testing.T) {
	t.Parallel()
	tw := newFakeTwilio(t)
	ch := newSMSChannel(t, tw.URL)
	b := setup(t, bundleOpts{
		cfg: func(c *Config) {
			c.PublicURL = testPublicURL
			wh := c.Channels[channels.Webhook]
			wh.Breaker.Threshold = -1 // the flaky receiver fails every first attempt: no circuit to open
			c.Channels[channels.Webhook] = wh
		},
		channels: map[string]channels.Channel{channels.SMS: ch},
	})
	srv := b.servePublic(smsHooks(b.d, ch))
	b.recv.script("/gone", func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	// The flaky receiver refuses the first attempt of each delivery.
	var flakyMu sync.Mutex
	flakySeen, flakyGot := map[string]bool{}, map[string][]byte{}
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("webhook-id")
		flakyMu.Lock()
		defer flakyMu.Unlock()
		if !flakySeen[id] {
			flakySeen[id] = true
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		flakyGot[id] = body
	}))
	t.Cleanup(flaky.Close)
	const unreachable = "+33698765432"
	subs := []*subscribers.Subscriber{
		{ID: "m_fr", Locale: "fr-FR", Timezone: "Europe/Paris", Endpoints: []subscribers.Endpoint{
			{ID: "mail", Channel: channels.Email, Address: "ops@dupont.example"}, {ID: "sms", Channel: channels.SMS, Address: "+33612345678"}}},
		{ID: "m_it", Locale: "it-CH", Endpoints: []subscribers.Endpoint{
			{ID: "mail", Channel: channels.Email, Address: "cucina@trattoria.example"}, {ID: "wh", Channel: channels.Webhook, URL: b.recv.url("/gone"), Secret: testSecret}}},
		{ID: "m_en", Locale: "en-GB", Endpoints: []subscribers.Endpoint{
			{ID: "wh", Channel: channels.Webhook, URL: flaky.URL + "/flaky", Secret: testSecret}}},
		{ID: "m_be", Locale: "nl-BE", Endpoints: []subscribers.Endpoint{
			{ID: "sms", Channel: channels.SMS, Address: unreachable}, {ID: "wh", Channel: channels.Webhook, URL: b.recv.url("/be"), Secret: testSecret},
			{ID: "mail", Channel: channels.Email, Address: "it@partner.example"}}},
	}
	for _, s := range subs {
		b.putSubscriber(s)
	}
	data, err := os.ReadFile("../examples/incidents.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		b.publish(line)
		var ev struct {
			ID         string `json:"id"`
			IncidentID string `json:"incident_id"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		events = append(events, ev.IncidentID)
	}
	incidents := slices.Compact(slices.Sorted(slices.Values(events)))

	// Everything settled, nothing parked: the flaky webhook's retries are
	// done.
	targets := 0
	b.waitFor("every notification over", 60*time.Second, func() bool {
		targets = 0
		for _, id := range incidents {
			p, err := b.d.Progress(b.ctx, id)
			if err != nil {
				return false
			}
			for _, u := range p.Updates {
				if !u.Settled || u.Total.Parked > 0 {
					return false
				}
				targets += u.Total.Targets
			}
		}
		return true
	})
	// Twilio's receipts: delivered, and undelivered for one number.
	forms, sids := tw.messages()
	if len(forms) == 0 {
		t.Fatal("no SMS sent")
	}
	for i, form := range forms {
		status, code := "delivered", 0
		if form.Get("To") == unreachable {
			status, code = "undelivered", 30003
		}
		for _, st := range []string{"sent", status} {
			c := code
			if st == "sent" {
				c = 0
			}
			if got := newStatusCallback(form.Get("StatusCallback"), sids[i], form.Get("To"), st, c).post(t, srv, twAuthToken, nil); got != http.StatusNoContent {
				t.Fatalf("receipt: %d", got)
			}
		}
	}

	var rows, notices []LedgerRow
	var jsonl bytes.Buffer
	enc, _ := NewLedgerEncoder(&jsonl, LedgerJSONL)
	n, err := b.d.Ledger().Export(b.ctx, LedgerFilter{}, func(r *LedgerRow) error {
		if r.Kind != KindUpdate {
			notices = append(notices, *r)
		} else {
			rows = append(rows, *r)
		}
		return enc.Encode(r)
	})
	if err != nil || enc.Flush() != nil {
		t.Fatal(err)
	}
	if len(rows) != targets || targets < 300 {
		t.Fatalf("%d rows of updates, the fan-out made %d notifications", len(rows), targets)
	}
	// The one service notice: the bounced merchant is told by email.
	if n != targets+1 || len(notices) != 1 || notices[0].Kind != KindEndpointDisabled || notices[0].SubscriberID != "m_it" ||
		notices[0].Outcome != Outboxed || notices[0].IncidentID != "" {
		t.Fatalf("%d rows in all; notices %+v", n, notices)
	}
	// The outbox's files, by delivery id.
	files := map[string][]byte{}
	for _, p := range outboxFiles(t, b.outbox) {
		content, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))] = content
	}
	hits := map[string][]byte{}
	for _, path := range []string{"/gone", "/be"} {
		for _, h := range b.recv.hitsFor(path) {
			if h.status < 300 {
				hits[h.id] = h.body
			}
		}
	}
	flakyMu.Lock()
	maps.Copy(hits, flakyGot)
	flakyMu.Unlock()
	texts := map[string]string{}
	for i, form := range forms {
		texts[sids[i]] = form.Get("Body")
	}
	seen := map[string]bool{}
	count := map[string]int{}
	for _, r := range rows {
		if seen[r.DeliveryID] {
			t.Fatalf("delivery %s has two rows", r.DeliveryID)
		}
		seen[r.DeliveryID] = true
		if !r.Final {
			t.Errorf("row not final: %+v", r)
		}
		if r.DeliveryID != DeliveryID(r.EventID, r.SubscriberID, r.EndpointID) || r.Kind != KindUpdate || r.IncidentID == "" || r.Sequence < 1 {
			t.Errorf("row identity %+v", r)
		}
		key := r.SubscriberID + "/" + r.EndpointID + "/" + string(r.Outcome)
		count[key]++
		var sent []byte
		switch r.Outcome {
		case Outboxed:
			sent = files[r.DeliveryID]
		case Delivered:
			if r.Channel == channels.SMS {
				sent = []byte(texts[r.ProviderID])
			} else {
				sent = hits[r.DeliveryID]
			}
		}
		if sent != nil && r.BodySHA256 != channels.HashBody(sent) {
			t.Errorf("%s (%s): hash %s is not that of the %d bytes sent", r.DeliveryID, r.Channel, r.BodySHA256, len(sent))
		}
		if (r.Outcome == Outboxed || r.Outcome == Delivered) && sent == nil {
			t.Errorf("%s: %s, but nothing was sent", r.DeliveryID, r.Outcome)
		}
		switch r.SubscriberID {
		case "m_it":
			if r.Locale != "" && (r.RequestedLocale != "it-CH" || r.Locale != "it" && !r.LocaleFallback) {
				t.Errorf("m_it locales: %+v", r)
			}
		case "m_be":
			if r.Locale != "" && (r.RequestedLocale != "nl-BE" || !r.LocaleFallback) {
				t.Errorf("m_be: Dutch is no language of Herald's, a fallback: %+v", r)
			}
		}
		switch {
		case r.SubscriberID == "m_en" && r.Outcome == Delivered:
			if r.Attempts != 2 || r.Records != 2 || r.Status != 200 {
				t.Errorf("flaky webhook: %+v", r)
			}
		case r.Channel == channels.SMS && r.Outcome == Delivered:
			want := "delivered"
			if r.SubscriberID == "m_be" {
				want = "undelivered"
			}
			if r.Receipt != want || r.ReceiptAt == nil || r.ProviderID == "" {
				t.Errorf("SMS receipt: %+v", r)
			}
		}
	}
	if notice := notices[0]; notice.BodySHA256 != channels.HashBody(files[notice.DeliveryID]) {
		t.Errorf("the notice's hash is not that of its outbox file")
	}
	if len(files) != 1+count["m_fr/mail/outboxed"]+count["m_it/mail/outboxed"]+count["m_be/mail/outboxed"] || len(files) == 1 {
		t.Errorf("%d outbox files, %v rows", len(files), count)
	}
	// The metrics count the outbox's writes as outboxed, never as
	// delivered (each record is counted before it is stored).
	emailOutboxed := count["m_fr/mail/outboxed"] + count["m_it/mail/outboxed"] + count["m_be/mail/outboxed"]
	if got := testutil.ToFloat64(b.d.metrics.outcomes.WithLabelValues(channels.Email, string(Outboxed))); int(got) < emailOutboxed || emailOutboxed == 0 {
		t.Errorf("herald_delivery_outcomes_total{email,outboxed} = %v, the ledger has %d outboxed emails", got, emailOutboxed)
	}
	if got := testutil.ToFloat64(b.d.metrics.outcomes.WithLabelValues(channels.Email, string(Delivered))); got != 0 {
		t.Errorf("herald_delivery_outcomes_total{email,delivered} = %v: the outbox counted as delivered", got)
	}
	// The hard bounce: refused (by the sends under way when the first
	// 410 came), then the endpoint disabled: later updates leave it out.
	if count["m_it/wh/failed"] == 0 || count["m_it/wh/failed"]+count["m_it/wh/disabled"] >= len(events) || count["m_it/wh/delivered"] != 0 ||
		count["m_en/wh/delivered"] == 0 || count["m_fr/sms/delivered"] == 0 || count["m_be/sms/delivered"] == 0 {
		t.Errorf("outcomes %v", count)
	}
	for _, r := range rows {
		if r.SubscriberID == "m_it" && r.EndpointID == "wh" && r.Outcome == Failed && (r.Status != 410 || r.Action != "disable_endpoint") {
			t.Errorf("bounce row %+v", r)
		}
	}
	// JSON lines and CSV give the same rows.
	if lines := strings.Count(jsonl.String(), "\n"); lines != n {
		t.Errorf("%d JSON lines for %d rows", lines, len(rows))
	}
	var csvOut bytes.Buffer
	cenc, _ := NewLedgerEncoder(&csvOut, LedgerCSV)
	if _, err := b.d.Ledger().Export(b.ctx, LedgerFilter{}, cenc.Encode); err != nil || cenc.Flush() != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n+1 || !slices.Equal(recs[0], LedgerColumns) {
		t.Fatalf("CSV: %d lines, header %v", len(recs), recs[0])
	}
	byID := map[string]LedgerRow{}
	for _, r := range append(rows, notices...) {
		byID[r.DeliveryID] = r
	}
	for _, rec := range recs[1:] {
		r := byID[rec[0]]
		if rec[3] != r.EventID || rec[11] != r.BodySHA256 || rec[13] != string(r.Outcome) || rec[21] != r.Receipt || rec[7] != r.Channel {
			t.Errorf("CSV row %v differs from %+v", rec, r)
		}
	}
}

// TestLedgerEmailBounces sends through the real email channel to an SMTP
// server that refuses one address for good (550 5.1.1, a hard bounce) and
// another for a while (451): the ledger shows the bounce (failed,
// suppress_address, receipt "bounced", no hash: nothing was sent), the
// next update to that address suppressed, the retried one delivered with
// the hash of the message the server accepted, byte for byte.
func TestLedgerEmailBounces(t *testing.T) {
	t.Parallel()
	mx := newSMTPServer(t)
	mx.answer("gone@dupont.example", func(int) *smtp.SMTPError {
		return smtpReply(550, smtp.EnhancedCode{5, 1, 1}, "<gone@dupont.example>: Recipient address rejected: User unknown")
	})
	mx.answer("busy@dupont.example", func(n int) *smtp.SMTPError {
		if n == 1 {
			return smtpReply(451, smtp.EnhancedCode{4, 3, 0}, "Temporary local problem, try again later")
		}
		return nil
	})
	b := setup(t, bundleOpts{
		cfg:      func(c *Config) { c.PublicURL = testPublicURL },
		channels: map[string]channels.Channel{channels.Email: newEmailChannel(t, mx.host, mx.port, 2)},
	})
	b.putSubscriber(emailSubscriber("m_gone", "fr-FR", "Europe/Paris", "Dupont", "gone@dupont.example"))
	b.putSubscriber(emailSubscriber("m_busy", "it-IT", "Europe/Rome", "Città", "busy@dupont.example"))
	b.publish(event("BNC-1", 1, "investigating"))
	over := func(ev string) func() bool {
		return func() bool { u := b.tryProgress("BNC-1", ev); return u.Settled && u.Total.Parked == 0 }
	}
	b.waitFor("the first update over", 20*time.Second, over("BNC-1:1"))
	b.publish(event("BNC-1", 2, "resolved"))
	b.waitFor("the second update over", 20*time.Second, over("BNC-1:2"))

	rows := map[string]LedgerRow{}
	if _, err := b.d.Ledger().Export(b.ctx, LedgerFilter{IncidentID: "BNC-1"}, func(r *LedgerRow) error { rows[r.SubscriberID+"/"+r.EventID] = *r; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4: %+v", len(rows), rows)
	}
	bounce := rows["m_gone/BNC-1:1"]
	if bounce.Outcome != Failed || bounce.Action != "suppress_address" || bounce.Status != 550 || bounce.Receipt != "bounced" ||
		bounce.ReceiptAt == nil || bounce.BodySHA256 != "" || !strings.Contains(bounce.Reason, "5.1.1") || strings.Contains(bounce.Reason, "gone@") {
		t.Errorf("bounce row %+v", bounce)
	}
	if r := rows["m_gone/BNC-1:2"]; r.Outcome != Suppressed || r.RequestedLocale != "fr-FR" {
		t.Errorf("after the bounce: %+v", r)
	}
	mx.mu.Lock()
	got := slices.Clone(mx.got)
	mx.mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("the server accepted %d messages, want 2", len(got))
	}

	for i, ev := range []string{"BNC-1:1", "BNC-1:2"} {
		r := rows["m_busy/"+ev]
		// The update has no Italian: a fallback, framed in Italian.
		if r.Outcome != Delivered || r.BodySHA256 != channels.HashBody(got[i].data) || r.ProviderID == "" || r.RequestedLocale != "it-IT" || !r.LocaleFallback {
			t.Errorf("%s: row %+v; the server got %d bytes", ev, r, len(got[i].data))
		}
	}
	if r := rows["m_busy/BNC-1:1"]; r.Attempts != 2 || r.Records != 2 {
		t.Errorf("the retried email: %+v", r)
	}
}
