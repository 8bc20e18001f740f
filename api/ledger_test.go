package api

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/dispatcher"
)

// get sends a GET with the admin token and returns the answer, body read
// (trailers are set once it is).
func (b *testBundle) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	return resp, string(data)
}

// TestAPILedgerAndProgress: the ledger streams one row per notification,
// as JSON lines or CSV, selected by incident, subscriber, update and time,
// with the row count in a trailer; bad filters get a 400 naming the
// parameter; the incident's answer carries its progress.
func TestAPILedgerAndProgress(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.putSubscriber(b.subscriber("m1", "fr-FR"))
	b.putSubscriber(b.subscriber("m2", "it-IT"))
	b.do("POST", "/v1/incidents", adminToken, event("LG-1", 1, "investigating"), nil)
	b.do("POST", "/v1/incidents", adminToken, event("LG-2", 1, "investigating"), nil)
	b.waitFor("the webhooks", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 2 && b.recv.delivered("/m2") == 2 })
	var inc struct {
		Progress []dispatcher.UpdateProgress `json:"progress"`
	}
	b.waitFor("the progress", 10*time.Second, func() bool {
		code, _ := b.do("GET", "/v1/incidents/LG-1", adminToken, "", &inc)
		return code == 200 && len(inc.Progress) == 1 && inc.Progress[0].Settled
	})
	if p := inc.Progress[0]; p.EventID != "LG-1:1" || p.Total != (dispatcher.ChannelProgress{Targets: 2, Delivered: 2}) {
		t.Errorf("progress %+v", p)
	}

	resp, body := b.get("/v1/ledger")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jsonl; charset=utf-8" ||
		resp.Trailer.Get("Herald-Ledger-Rows") != "4" || strings.Count(body, "\n") != 4 {
		t.Fatalf("GET /v1/ledger: %d %v %v\n%s", resp.StatusCode, resp.Header, resp.Trailer, body)
	}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		var r dispatcher.LedgerRow
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Outcome != dispatcher.Delivered || len(r.BodySHA256) != 64 || r.Locale == "" {
			t.Errorf("row %s: %v", line, err)
		}
	}
	resp, body = b.get("/v1/ledger?format=csv&incident=LG-2&subscriber=m2")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" || err != nil || len(rows) != 2 ||
		rows[1][3] != "LG-2:1" || rows[1][5] != "m2" || !strings.Contains(resp.Header.Get("Content-Disposition"), "herald-ledger.csv") {
		t.Fatalf("CSV: %d %v %v\n%s", resp.StatusCode, resp.Header, err, body)
	}
	for query, want := range map[string]int{
		"?event=LG-1:1": 2, "?event=NONE:1": 0, "?subscriber=m1": 2, "?since=2999-01-01": 0,
		"?until=2000-01-01T00:00:00Z": 0, "?since=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339): 4,
	} {
		resp, body := b.get("/v1/ledger" + query)
		if resp.StatusCode != 200 || strings.Count(body, "\n") != want || resp.Trailer.Get("Herald-Ledger-Rows") != itoa(want) {
			t.Errorf("GET /v1/ledger%s: %d, %d rows, want %d\n%s", query, resp.StatusCode, strings.Count(body, "\n"), want, body)
		}
	}
	// An empty CSV export still has its header.
	if _, body := b.get("/v1/ledger?format=csv&since=2999-01-01"); strings.TrimSpace(body) != strings.Join(dispatcher.LedgerColumns, ",") {
		t.Errorf("empty CSV export: %q", body)
	}
	for query, field := range map[string]string{
		"?format=xml": "format", "?since=yesterday": "since", "?until=12/01/2026": "until",
		"?incident=a.b": "incident", "?subscriber=a*": "subscriber", "?since=2026-02-01&until=2026-01-01": "until",
	} {
		var e errorBody
		if code, body := b.do("GET", "/v1/ledger"+query, adminToken, "", &e); code != 400 || len(e.Fields) != 1 || e.Fields[0].Field != field {
			t.Errorf("GET /v1/ledger%s: %d %s, want 400 on %s", query, code, body, field)
		}
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestAPIRecall: a recall answers with the notifications already sent;
// a bad request gets a 400 naming the field, an unknown update a 404.
func TestAPIRecall(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.putSubscriber(b.subscriber("m1", "fr-FR"))
	b.do("POST", "/v1/incidents", adminToken, event("RC-1", 1, "investigating"), nil)
	b.waitFor("the webhook", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })
	var res dispatcher.RecallResult
	b.waitFor("the record", 10*time.Second, func() bool {
		code, _ := b.do("POST", "/v1/incidents/RC-1/recall", adminToken, "\ufeff"+`{"event_id":"RC-1:1"}`, &res)
		return code == 200 && res.SentTotal == 1
	})
	if len(res.Sent) != 1 || res.Sent[0].SubscriberID != "m1" || res.Sent[0].Outcome != dispatcher.Delivered || res.Recalled != 0 {
		t.Errorf("recall %+v", res)
	}
	for _, tc := range []struct {
		path, body string
		code       int
		field      string
	}{
		{"/v1/incidents/RC-1/recall", `{}`, 400, "event_id"},
		{"/v1/incidents/RC-1/recall", `{"event_id":"RC-1:1","force":true}`, 400, "(body)"},
		{"/v1/incidents/RC-1/recall", `{"event_id":"RC-1:1","EVENT_ID":"x"}`, 400, "EVENT_ID"},
		{"/v1/incidents/RC-1/recall", `{"event_id":`, 400, "(body)"},
		{"/v1/incidents/RC-1/recall", `{"event_id":"RC-1:1"} {}`, 400, "(body)"},
		{"/v1/incidents/a.b/recall", `{"event_id":"RC-1:1"}`, 400, "id"},
		{"/v1/incidents/RC-1/recall", `{"event_id":"RC-1:2"}`, 404, ""},
		{"/v1/incidents/NOPE/recall", `{"event_id":"NOPE:1"}`, 404, ""},
		{"/v1/incidents/RC-1/recall", `{"event_id":"` + strings.Repeat("x", 5000) + `"}`, 413, ""},
	} {
		var e errorBody
		code, body := b.do("POST", tc.path, adminToken, tc.body, &e)
		if code != tc.code || (tc.field != "" && (len(e.Fields) == 0 || !strings.HasPrefix(e.Fields[0].Field, tc.field))) {
			t.Errorf("POST %s %.60s: %d %s, want %d on %q", tc.path, tc.body, code, body, tc.code, tc.field)
		}
	}
}

// TestAPILedgerUnavailable: an export that cannot begin (JetStream out of
// reach) answers 503, not a short file.
func TestAPILedgerUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	b.nc.Close()
	var e errorBody
	if code, body := b.do("GET", "/v1/ledger", adminToken, "", &e); code != http.StatusServiceUnavailable || e.Error == "" {
		t.Errorf("GET /v1/ledger without JetStream: %d %s", code, body)
	}
	if code, body := b.do("GET", "/v1/incidents/X-1", adminToken, "", &e); code != http.StatusServiceUnavailable {
		t.Errorf("GET /v1/incidents without JetStream: %d %s", code, body)
	}
}
