package main

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/dispatcher"
)

// TestPublishWaitLedgerAndRecall drives a running serve from the CLI as an
// operator would during an incident: publish --wait shows each update's
// outcome once every target is over or parked (through NATS, and through
// the API with a progress bar); herald ledger export writes the ledger as
// CSV and JSON lines; herald recall cancels what an update has not sent
// yet and lists what it has, through NATS and through the API.
func TestPublishWaitLedgerAndRecall(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(receiver.Close)
	quiet := time.Now().UTC()
	subs := writeFile(t, dir, "subs.jsonl", strings.Join([]string{
		`{"id":"fr1","locale":"fr-FR","endpoints":[{"id":"mail","channel":"email","address":"a@fr1.example"}]}`,
		`{"id":"it1","locale":"it-IT","endpoints":[{"id":"mail","channel":"email","address":"a@it1.example"},` +
			`{"id":"sms","channel":"sms","address":"+393471234567","quiet_hours":{"start":"` + quiet.Add(-time.Hour).Format("15:04") + `","end":"` + quiet.Add(time.Hour).Format("15:04") + `"}}]}`,
		`{"id":"hook","locale":"en","endpoints":[{"id":"wh","channel":"webhook","url":"` + receiver.URL + `/hook","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]}`,
	}, "\n"))
	config := writeFile(t, dir, "herald.yaml", "data: "+data+"\nwebhook:\n  allow_http: true\n  allow: [127.0.0.1/32]\n")
	env := map[string]string{"HERALD_ADMIN_TOKEN": "admin-token-for-tests"}
	if code, out, errOut := herald(t, env, "", "subscribers", "import", "--config", config, subs); code != exitOK {
		t.Fatalf("import = %d\n%s\n%s", code, out, errOut)
	}
	logs, _ := serveInBackground(t, env, "--config", config, "--listen", "127.0.0.1:0", "--nats-listen", freeAddr(t))
	server := serveReady(t, logs)
	ev := func(seq int, status string) string {
		return `{"id":"CLI-W:` + string(rune('0'+seq)) + `","incident_id":"CLI-W","sequence":` + string(rune('0'+seq)) + `,"status":"` + status +
			`","priority":"P2","title":{"fr":"Panne","en":"Outage","it":"Guasto"},"body":{"fr":"Nous enquêtons.","en":"We are investigating.","it":"Stiamo indagando."}}`
	}

	// Through NATS: no bar off a terminal, the summary once settled.
	code, out, errOut := herald(t, env, ev(1, "investigating"), "publish", "--data", data, "--wait", "-")
	if code != exitOK || !strings.Contains(out, "CLI-W:1: 4 targets: 1 delivered, 2 outboxed, 1 parked (retry or deferral)") ||
		!strings.Contains(out, "  email    2 targets: 2 outboxed") || !strings.Contains(out, "  sms      1 targets: 1 parked") ||
		!strings.Contains(out, "  webhook  1 targets: 1 delivered") || strings.Contains(errOut, "CLI-W:1") {
		t.Fatalf("publish --wait = %d\n%s\n%s", code, out, errOut)
	}
	// Through the API, with the bar forced.
	code, out, errOut = herald(t, env, ev(2, "identified"), "publish", "--data", data, "--server", server, "--wait", "--progress", "always", "-")
	if code != exitOK || !strings.Contains(out, "CLI-W:2: 4 targets:") || !strings.Contains(errOut, "CLI-W:2") || !strings.Contains(errOut, "4/4") {
		t.Fatalf("publish --wait --server = %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = herald(t, env, ev(3, "monitoring"), "publish", "--data", data, "--wait", "--progress", "sometimes", "-"); code != exitUsage {
		t.Fatalf("--progress sometimes = %d\n%s", code, errOut)
	}

	// The ledger: 8 notifications, as CSV to a file and as JSON lines.
	csvPath := filepath.Join(dir, "ledger.csv")
	if code, out, errOut = herald(t, env, "", "ledger", "export", "--data", data, "--out", csvPath); code != exitOK || !strings.Contains(errOut, "8 notifications exported") {
		t.Fatalf("ledger export = %d\n%s\n%s", code, out, errOut)
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 9 || rows[0][0] != "delivery_id" {
		t.Fatalf("ledger.csv: %d lines, %v", len(rows), err)
	}
	code, out, errOut = herald(t, env, "", "ledger", "export", "--data", data, "--incident", "CLI-W", "--subscriber", "it1", "--format", "jsonl")
	if code != exitOK || strings.Count(out, "\n") != 4 {
		t.Fatalf("ledger export --incident --subscriber = %d\n%s\n%s", code, out, errOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r dispatcher.LedgerRow
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.SubscriberID != "it1" || r.RequestedLocale != "it-IT" {
			t.Errorf("row %s: %v", line, err)
		}
		if r.Channel == "email" && (r.Outcome != dispatcher.Outboxed || len(r.BodySHA256) != 64) {
			t.Errorf("email row %+v", r)
		}
	}
	for _, bad := range [][]string{{"--format", "xml"}, {"--since", "yesterday"}, {"--incident", "a.b"}, {"--since", "2026-02-01", "--until", "2026-01-01"}} {
		if code, _, errOut = herald(t, env, "", append([]string{"ledger", "export", "--data", data}, bad...)...); code != exitUsage {
			t.Errorf("ledger export %v = %d, want 2\n%s", bad, code, errOut)
		}
	}

	// Recall the second update: its deferred SMS is cancelled, the sent
	// ones are listed.
	code, out, errOut = herald(t, env, "", "recall", "--data", data, "CLI-W:2")
	if code != exitOK || !strings.Contains(out, "CLI-W:2 (incident CLI-W, update 2) recalled") ||
		!strings.Contains(out, "1 notifications cancelled and recorded recalled; 3 already sent") ||
		!strings.Contains(out, "hook") || !strings.Contains(out, "fr1") {
		t.Fatalf("recall = %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = herald(t, env, "", "recall", "--data", data, "--server", server, "--incident", "CLI-W", "--json", "CLI-W:2")
	var res dispatcher.RecallResult
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || !res.AlreadyRecalled || res.Recalled != 0 || res.SentTotal != 3 {
		t.Fatalf("recall --server = %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = herald(t, env, "", "publish", "--data", data, "--server", server, "--wait", "-")
	if code != exitUsage {
		t.Errorf("publish of nothing = %d", code)
	}
	code, out, errOut = herald(t, env, "", "ledger", "export", "--data", data, "--event", "CLI-W:2", "--format", "csv")
	if code != exitOK || !strings.Contains(out, ",recalled,") || strings.Count(out, "\n") != 5 {
		t.Fatalf("ledger of the recalled update = %d\n%s\n%s", code, out, errOut)
	}
	for _, args := range [][]string{{"recall", "--data", data, "NOPE:1"}, {"recall", "--data", data}, {"recall", "--data", data, "--server", server, "CLI-W:2"},
		{"recall", "--data", data, "--server", server, "--incident", "CLI-W", "CLI-W:7"}} {
		if code, _, errOut = herald(t, env, "", args...); code != exitUsage {
			t.Errorf("herald %v = %d, want 2\n%s", args, code, errOut)
		}
	}
}

// TestPublishWaitGivesUp: with nothing delivering (no serve running),
// publish --wait gives up at --wait-timeout with exit 1, saying what is
// left.
func TestPublishWaitGivesUp(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	ev := `{"id":"CLI-G:1","incident_id":"CLI-G","sequence":1,"status":"investigating","title":"T","body":"B"}`
	code, out, errOut := herald(t, nil, ev, "publish", "--data", data, "--wait", "--wait-timeout", "300ms", "-")
	if code != exitFailure || !strings.Contains(out, "CLI-G:1 published") ||
		!strings.Contains(errOut, "CLI-G:1: gave up waiting (--wait-timeout): its fan-out has not begun") {
		t.Fatalf("publish --wait without a serve = %d\n%s\n%s", code, out, errOut)
	}
}
