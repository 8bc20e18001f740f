package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/incident"
)

const ingestFixtures = "../../ingest/testdata"

// decodeEvents decodes the JSON lines `herald ingest test` prints, each a
// valid event.
func decodeEvents(t *testing.T, out string) []*incident.Event {
	t.Helper()
	var evs []*incident.Event
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ev, err := incident.Decode([]byte(line), 0)
		if err != nil {
			t.Fatalf("printed event %s: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestIngestTestCommand converts saved payloads and feeds with the
// configuration's mappings, and refuses what it cannot convert.
func TestIngestTestCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := writeFile(t, dir, "herald.yaml", `
ingest:
  statuspage:
    components:
      ftgks51sfs2d: nexo-terminals
      Virements: payouts
    impact:
      major: P1
  feeds:
    - name: instatus
      url: https://status.example.com/feed.atom
      components: [payouts]
      priority: P2
`)
	code, out, errOut := herald(t, nil, "", "ingest", "test", "--config", conf, "--statuspage", filepath.Join(ingestFixtures, "statuspage", "incident-3.json"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	evs := decodeEvents(t, out)
	if len(evs) != 3 || evs[0].ID != "u1d9qk0w7z3a" || evs[2].Sequence != 3 || evs[0].Priority != incident.P1 ||
		len(evs[0].Components) != 1 || evs[0].Components[0] != "nexo-terminals" || evs[2].ShouldNotify() {
		t.Fatalf("events %s", out)
	}
	if !strings.Contains(errOut, "3 events from 1 incidents") {
		t.Errorf("summary %q", errOut)
	}

	code, out, errOut = herald(t, nil, "", "ingest", "test", "--config", conf, "--statuspage", filepath.Join(ingestFixtures, "statuspage", "maintenance-cancelled.json"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	evs = decodeEvents(t, out)
	first, last := evs[0], evs[len(evs)-1]
	if len(evs) != 3 || first.Status != incident.Scheduled || first.ScheduledFor == nil || !last.Cancelled || last.Status != incident.Completed ||
		first.Components[0] != "payouts" {
		t.Fatalf("maintenance events %s", out)
	}

	code, out, errOut = herald(t, nil, "", "ingest", "test", "--config", conf, "--feed", filepath.Join(ingestFixtures, "feed", "status.atom"))
	if code != exitOK {
		t.Fatalf("feed: exit %d: %s", code, errOut)
	}
	evs = decodeEvents(t, out)
	if len(evs) != 2 || !strings.HasPrefix(evs[0].IncidentID, "instatus-") || evs[0].Priority != incident.P2 || evs[1].Status != incident.Identified {
		t.Fatalf("feed events %s", out)
	}

	// From stdin, an API answer.
	api := `{"page":{"id":"x"},"incidents":[{"id":"abc","name":"API down","impact":"critical","incident_updates":[{"id":"u9","status":"investigating","body":"Looking."}]}]}`
	code, out, _ = herald(t, nil, api, "ingest", "test", "--statuspage", "-")
	if evs := decodeEvents(t, out); code != exitOK || len(evs) != 1 || evs[0].Priority != incident.P1 {
		t.Fatalf("API answer: %d %s", code, out)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"ingest"}, "test"},
		{"no file", []string{"ingest", "test"}, "one of"},
		{"both", []string{"ingest", "test", "--statuspage", "a", "--feed", "b"}, "one of"},
		{"malformed", []string{"ingest", "test", "--statuspage", writeFile(t, dir, "bad.json", `{"incident": [`)}, "not a Statuspage payload"},
		{"component only", []string{"ingest", "test", "--statuspage", filepath.Join(ingestFixtures, "statuspage", "component.json")}, "component"},
		{"not a feed", []string{"ingest", "test", "--feed", writeFile(t, dir, "page.html", "<html></html>")}, "not a Statuspage payload"},
		{"unknown feed", []string{"ingest", "test", "--config", conf, "--name", "nope", "--feed", filepath.Join(ingestFixtures, "feed", "status.rss")}, "no feed"},
		{"bad map", []string{"ingest", "test", "--config", writeFile(t, dir, "badmap.yaml", "ingest:\n  statuspage:\n    impact:\n      major: P7\n"),
			"--statuspage", filepath.Join(ingestFixtures, "statuspage", "incident-3.json")}, "impact map"},
	} {
		code, _, errOut := herald(t, nil, "", tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, %q; want 2 with %q", tc.name, code, errOut, tc.want)
		}
	}
}

// TestServeIngestsStatuspage runs herald serve with a Statuspage token:
// a webhook is received on the public listener and fanned out, a wrong
// token refused (403), malformed JSON refused (400); the same payload
// again, then one with a fourth update, notify the subscriber of each
// update once; GET /v1/sources on the admin API reports the receiver
// (admin token only).
func TestServeIngestsStatuspage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pubAddr := freeAddr(t)
	conf := writeFile(t, dir, "herald.yaml", "ingest:\n  statuspage:\n    token: tok_0123456789abcdef\n    components:\n      ftgks51sfs2d: nexo-terminals\n")
	env := map[string]string{"HERALD_DATA": filepath.Join(dir, "data"), "HERALD_ADMIN_TOKEN": "admin-token-for-tests"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--config", conf, "--listen", addr, "--public-listen", pubAddr, "--nats-listen", "none"},
			&stdio{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &errb, env: func(k string) string { return env[k] }})
	}()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exited %d: %s", code, errb.String())
		}
	}()
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not become ready: %s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	do := func(method, path, token, body string) (int, []byte) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	get := func(path, token string) (int, []byte) { return do(http.MethodGet, path, token, "") }
	// A subscriber to every component, by email (the outbox: no relay).
	if code, body := do(http.MethodPut, "/v1/subscribers/m_ops", "admin-token-for-tests",
		`{"id":"m_ops","name":"Ops","locale":"en-GB","timezone":"Europe/London","endpoints":[{"id":"mail","channel":"email","address":"ops@acme.example"}]}`); code != http.StatusCreated {
		t.Fatalf("subscriber: %d %s", code, body)
	}
	fixture := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(ingestFixtures, "statuspage", name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	post := func(token string, payload []byte) int {
		resp, err := http.Post("http://"+pubAddr+"/ingest/statuspage/"+token, "application/json", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	payload := fixture("incident-3.json")
	if code := post("tok_0123456789abcdeX", payload); code != http.StatusForbidden {
		t.Fatalf("wrong token: %d", code)
	}
	if code := post("tok_0123456789abcdef", []byte(`{"incident": {"id": "p3xk2w9v7q1m", "incident_updates": [`)); code != http.StatusBadRequest {
		t.Fatalf("malformed JSON: %d", code)
	}
	if code := post("tok_0123456789abcdef", payload); code != http.StatusOK {
		t.Fatalf("webhook: %d", code)
	}
	// The admin listener serves no public route.
	if resp, err := http.Post(base+"/ingest/statuspage/tok_0123456789abcdef", "application/json", bytes.NewReader(payload)); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the receiver on the admin listener: %v %v, want 404", resp, err)
	}
	// The fan-out records the incident's last update.
	waitIncident := func(status string) {
		t.Helper()
		for {
			code, body := get("/v1/incidents/p3xk2w9v7q1m", "admin-token-for-tests")
			if code == http.StatusOK && bytes.Contains(body, []byte(`"`+status+`"`)) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the incident was not fanned out to %s: %d %s", status, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitIncident("monitoring")
	// The same payload again, then one with a fourth update.
	if code := post("tok_0123456789abcdef", payload); code != http.StatusOK {
		t.Fatalf("the same payload again: %d", code)
	}
	if code := post("tok_0123456789abcdef", fixture("incident-4.json")); code != http.StatusOK {
		t.Fatalf("one more update: %d", code)
	}
	waitIncident("resolved")
	// Each update that notifies reached the subscriber once; the
	// monitoring update (deliver_notifications false) reached nobody.
	want := map[string]int{"u1d9qk0w7z3a": 1, "u2h4mn6r8t0b": 1, "u4j6kl8m0n2d": 1}
	var got map[string]int
	for {
		code, body := get("/v1/deliveries?subscriber=m_ops", "admin-token-for-tests")
		var recs struct {
			Items []struct {
				EventID string `json:"event_id"`
				Outcome string `json:"outcome"`
			} `json:"items"`
		}
		if err := json.Unmarshal(body, &recs); code != http.StatusOK || err != nil {
			t.Fatalf("GET /v1/deliveries: %d %s", code, body)
		}
		got = map[string]int{}
		for _, r := range recs.Items {
			if r.Outcome == "outboxed" || r.Outcome == "delivered" {
				got[r.EventID]++
			}
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != len(want) {
		t.Fatalf("deliveries per update %v, want %v", got, want)
	}
	for id, n := range want {
		if got[id] != n {
			t.Fatalf("deliveries per update %v, want %v", got, want)
		}
	}
	if code, _ := get("/v1/sources", ""); code != http.StatusUnauthorized {
		t.Fatalf("GET /v1/sources without the token: %d", code)
	}
	code, body := get("/v1/sources", "admin-token-for-tests")
	var ans struct {
		Sources []struct {
			Kind      string `json:"kind"`
			Published int    `json:"published"`
		} `json:"sources"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || code != http.StatusOK || len(ans.Sources) != 1 ||
		ans.Sources[0].Kind != "statuspage-webhook" || ans.Sources[0].Published != 4 {
		t.Fatalf("GET /v1/sources: %d %s", code, body)
	}
	if strings.Contains(errb.String(), "tok_0123456789abcdef") {
		t.Error("the token appears in the log")
	}
}

// TestIngestConfig: the Statuspage token and page come from
// ingest.statuspage (YAML or TOML) or from HERALD_STATUSPAGE_TOKEN and
// HERALD_STATUSPAGE_URL, which win over the file.
func TestIngestConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	noEnv := func(string) string { return "" }
	for _, f := range []string{
		writeFile(t, dir, "herald.yaml", "ingest:\n  statuspage:\n    token: tok_from_the_file_0001\n    url: https://status.example.com\n    interval: 2m\n"),
		writeFile(t, dir, "herald.toml", "[ingest.statuspage]\ntoken = \"tok_from_the_file_0001\"\nurl = \"https://status.example.com\"\ninterval = \"2m\"\n"),
	} {
		cfg, err := loadConfig(f, noEnv)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		sp := cfg.Ingest.Statuspage
		if sp.Token.Reveal() != "tok_from_the_file_0001" || sp.URL != "https://status.example.com" || sp.Interval != 2*time.Minute {
			t.Errorf("%s: token %q url %q interval %s", f, sp.Token.Reveal(), sp.URL, sp.Interval)
		}
	}
	env := map[string]string{"HERALD_STATUSPAGE_TOKEN": "tok_from_the_environment", "HERALD_STATUSPAGE_URL": "https://page.example.net"}
	cfg, err := loadConfig(filepath.Join(dir, "herald.yaml"), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if sp := cfg.Ingest.Statuspage; sp.Token.Reveal() != "tok_from_the_environment" || sp.URL != "https://page.example.net" {
		t.Errorf("from the environment: token %q url %q", sp.Token.Reveal(), sp.URL)
	}
}
