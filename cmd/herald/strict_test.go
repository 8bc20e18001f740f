package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/channels/sms"
)

// serveInBackground runs `herald serve` in-process until the test ends (or
// stop is called) and returns its stderr and exit status once it stopped.
func serveInBackground(t *testing.T, env map[string]string, args ...string) (logs *channelstest.SyncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &channelstest.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		// Each serve gets its own public listener (the default port is
		// one for every test).
		args = append([]string{"serve", "--public-listen", "127.0.0.1:0"}, args...)
		done <- run(ctx, args, &stdio{in: strings.NewReader(""), out: logs, err: logs, env: func(k string) string { return env[k] }})
	}()
	code := -1
	stopped := false
	stop = func() int {
		if !stopped {
			cancel()
			code, stopped = <-done, true
		}
		return code
	}
	t.Cleanup(func() { stop() })
	return logs, stop
}

// waitLog waits until logs hold want, or the serve stopped.
func waitLog(t *testing.T, logs *channelstest.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("serve never logged %q:\n%s", want, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveReady waits until the serve whose logs these are answers /readyz
// with 200, and returns its base URL.
func serveReady(t *testing.T, logs *channelstest.SyncBuffer) string {
	t.Helper()
	waitLog(t, logs, "HTTP API listening")
	_, rest, _ := strings.Cut(logs.String(), "HTTP API listening")
	_, rest, _ = strings.Cut(rest, "addr=")
	addr := strings.Fields(rest)[0]
	base := "http://" + addr
	waitReady(t, base)
	return base
}

// TestStrictModeRefusesMissingProvider: with subscribers on SMS and no
// Twilio account, strict mode (flag, environment or file) refuses to start,
// naming the channel, its endpoints and what configures it; without strict
// mode the same data starts, with SMS going to the outbox. Strict mode also
// refuses new endpoints on a channel without a provider.
func TestStrictModeRefusesMissingProvider(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	subs := writeFile(t, dir, "subs.jsonl", strings.Join([]string{
		`{"id":"m1","locale":"fr-FR","endpoints":[{"id":"wh","channel":"webhook","url":"https://m1.example/h","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]}`,
		`{"id":"m2","locale":"fr-FR","endpoints":[{"id":"sms","channel":"sms","address":"+33612345678"},{"id":"sms2","channel":"sms","address":"+33612345679"}]}`,
	}, "\n"))
	if code, out, errOut := herald(t, nil, "", "subscribers", "import", "--data", data, subs); code != exitOK {
		t.Fatalf("import = %d\n%s\n%s", code, out, errOut)
	}
	base := []string{"--data", data, "--listen", "127.0.0.1:0", "--public-listen", "127.0.0.1:0", "--nats-listen", "none"}
	strictFile := writeFile(t, dir, "strict.yaml", "strict: true\n")
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
	}{
		"flag":        {nil, append([]string{"--strict"}, base...)},
		"environment": {map[string]string{"HERALD_STRICT": "true"}, base},
		"config file": {nil, append([]string{"--config", strictFile}, base...)},
	} {
		code, _, errOut := herald(t, tc.env, "", append([]string{"serve"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, "strict mode: sms has 2 endpoints and no provider") ||
			!strings.Contains(errOut, "HERALD_TWILIO_ACCOUNT_SID") {
			t.Errorf("%s: serve = %d\n%s", name, code, errOut)
		}
	}
	if code, _, errOut := herald(t, map[string]string{"HERALD_STRICT": "maybe"}, "", append([]string{"serve"}, base...)...); code != exitUsage || !strings.Contains(errOut, "HERALD_STRICT") {
		t.Errorf("HERALD_STRICT=maybe: %d %s", code, errOut)
	}

	// Without strict mode, the same data starts: SMS go to the outbox.
	logs, stop := serveInBackground(t, nil, base...)
	serveReady(t, logs)
	if !strings.Contains(logs.String(), "name=sms mode=\"outbox") {
		t.Errorf("SMS not reported as going to the outbox:\n%s", logs.String())
	}
	stop()

	// Strict mode refuses a new SMS endpoint when there is no provider.
	more := writeFile(t, dir, "more.jsonl", `{"id":"m3","locale":"fr-FR","endpoints":[{"id":"sms","channel":"sms","address":"+33612345670"}]}`)
	code, _, errOut := herald(t, map[string]string{"HERALD_STRICT": "1"}, "", "subscribers", "import", "--data", data, more)
	if code != exitUsage || !strings.Contains(errOut, "endpoints[0].channel: channel sms has no provider and strict mode is on") {
		t.Errorf("strict import of an SMS endpoint = %d\n%s", code, errOut)
	}

	// Strict mode starts once no endpoint needs a missing provider.
	if code, _, errOut := herald(t, nil, "", "subscribers", "rm", "--data", data, "m2"); code != exitOK {
		t.Fatalf("rm = %d %s", code, errOut)
	}
	logs, stop = serveInBackground(t, nil, append([]string{"--strict"}, base...)...)
	serveReady(t, logs)
	stop()
}

// TestStartupWarnings: a loopback public URL, a generated admin token and
// a live email relay without DKIM are each warned about at start, and
// nothing is said when they are fixed.
func TestStartupWarnings(t *testing.T) {
	t.Parallel()
	warnings := func(cfg *fileConfig, tokenFile string) string {
		logs := &channelstest.SyncBuffer{}
		startupWarnings(cfg, tokenFile, slog.New(slog.NewTextHandler(logs, nil)))
		return logs.String()
	}
	bad := &fileConfig{PublicURL: "http://127.0.0.1:8080"}
	bad.Email.Host = "smtp.example.net"
	got := warnings(bad, "herald-data/admin-token")
	for _, want := range []string{"public URL points to this machine", "admin token generated", "without DKIM"} {
		if !strings.Contains(got, want) || !strings.Contains(got, "level=WARN") {
			t.Errorf("no warning %q in:\n%s", want, got)
		}
	}
	good := &fileConfig{PublicURL: "https://status.pay.example"}
	good.Email.Host = "smtp.example.net"
	good.Email.DKIM = &dkimConfig{Domain: "pay.example", Selector: "s", KeyFile: "k.pem"}
	if got := warnings(good, ""); got != "" {
		t.Errorf("warnings for a good configuration:\n%s", got)
	}
	if got := warnings(&fileConfig{PublicURL: "https://status.pay.example"}, ""); got != "" {
		t.Errorf("warnings without a relay (outbox, no DKIM needed):\n%s", got)
	}
	for u, want := range map[string]bool{
		"http://127.0.0.1:8080": true, "http://localhost:8080": true, "http://[::1]/": true, "http://0.0.0.0:8080": true,
		"http://127.9.9.9": true, "http://app.localhost": true, "http://[::ffff:127.0.0.1]/": true,
		"https://status.pay.example": false, "http://10.0.0.1": false, "https://203.0.113.7": false,
	} {
		if got := loopbackURL(u); got != want {
			t.Errorf("loopbackURL(%q) = %v, want %v", u, got, want)
		}
	}
}

// TestPublishCoverageAndRequiredLocales: herald publish reports each
// update's translation coverage among its audience, refuses (exit 2) an
// update lacking a language require_locales asks for its priority, naming
// it, unless --allow-fallback; the same through a running serve's API,
// whose refusals read as the local ones (no doubled "invalid event:").
func TestPublishCoverageAndRequiredLocales(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	config := writeFile(t, dir, "herald.yaml", "require_locales:\n  P1: [fr, en, it]\n  P3: [fr, it]\n")
	subs := writeFile(t, dir, "subs.jsonl", strings.Join([]string{
		`{"id":"fr1","locale":"fr-FR","endpoints":[{"id":"mail","channel":"email","address":"a@fr1.example"}]}`,
		`{"id":"it1","locale":"it-IT","endpoints":[{"id":"mail","channel":"email","address":"a@it1.example"}]}`,
		`{"id":"it2","locale":"it-CH","endpoints":[{"id":"mail","channel":"email","address":"a@it2.example"}]}`,
	}, "\n"))
	if code, out, errOut := herald(t, nil, "", "subscribers", "import", "--data", data, subs); code != exitOK {
		t.Fatalf("import = %d\n%s\n%s", code, out, errOut)
	}
	ev := func(id, prio string) string {
		return `{"id":"` + id + `:1","incident_id":"` + id + `","sequence":1,"status":"investigating","priority":"` + prio +
			`","title":{"fr":"Panne","en":"Outage"},"body":{"fr":"Nous enquêtons.","en":"We are investigating."}}`
	}
	code, out, errOut := herald(t, nil, ev("CLI-1", "P1"), "publish", "--config", config, "--data", data, "-")
	if code != exitUsage || !strings.Contains(errOut, "event 1: refused: the update lacks it, required for P1 updates") ||
		!strings.Contains(errOut, "it   not carried  2 subscribers, 2 read it in en") || strings.Contains(out, "published") {
		t.Fatalf("P1 without Italian = %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = herald(t, nil, ev("CLI-1", "P1"), "publish", "--config", config, "--data", data, "--allow-fallback", "-")
	if code != exitOK || !strings.Contains(out, "CLI-1:1 published") ||
		!strings.Contains(out, "languages: en, fr; audience 3 subscribers, 2 get a fallback") ||
		!strings.Contains(out, "fr   carried      1 subscribers") {
		t.Fatalf("P1 with --allow-fallback = %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = herald(t, nil, ev("CLI-2", "P2"), "publish", "--config", config, "--data", data, "-"); code != exitOK {
		t.Fatalf("P2 = %d\n%s\n%s", code, out, errOut)
	}
	// An unrated update is checked as the unrated priority (P3), and says so.
	unrated := func(id string) string { return strings.Replace(ev(id, "P1"), `"priority":"P1",`, "", 1) }
	code, out, errOut = herald(t, nil, unrated("CLI-5"), "publish", "--config", config, "--data", data, "-")
	if code != exitUsage || !strings.Contains(errOut, "event 1: refused: the update lacks it, required for P3 updates") {
		t.Fatalf("unrated without Italian = %d\n%s\n%s", code, out, errOut)
	}

	// The same through a running serve's API.
	logs, _ := serveInBackground(t, nil, "--config", config, "--data", data, "--listen", "127.0.0.1:0", "--nats-listen", "none")
	server := serveReady(t, logs)
	code, out, errOut = herald(t, nil, ev("CLI-3", "P1"), "publish", "--data", data, "--server", server, "-")
	if code != exitUsage || !strings.Contains(errOut, "event 1: refused: the update lacks it, required for P1 updates") ||
		!strings.Contains(errOut, "it   not carried  2 subscribers") {
		t.Fatalf("--server, P1 without Italian = %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = herald(t, nil, ev("CLI-3", "P1"), "publish", "--data", data, "--server", server, "--allow-fallback", "-")
	if code != exitOK || !strings.Contains(out, "CLI-3:1 published") || !strings.Contains(out, "audience 3 subscribers, 2 get a fallback") {
		t.Fatalf("--server, P1 with --allow-fallback = %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = herald(t, nil, unrated("CLI-5"), "publish", "--data", data, "--server", server, "-")
	if code != exitUsage || !strings.Contains(errOut, "event 1: refused: the update lacks it, required for P3 updates") {
		t.Fatalf("--server, unrated without Italian = %d\n%s\n%s", code, out, errOut)
	}
	// An event over the size limit names the limit, as a local publish does.
	big := strings.Replace(ev("CLI-6", "P2"), "Nous enquêtons.", strings.Repeat("x", 300<<10), 1)
	code, out, errOut = herald(t, nil, big, "publish", "--data", data, "--server", server, "-")
	if code != exitUsage || !strings.Contains(errOut, "event 1: invalid event: event is 307") || !strings.Contains(errOut, "over the limit of 262144 bytes") {
		t.Fatalf("--server, an event over the limit = %d\n%s\n%.500s", code, out, errOut)
	}
	bad := strings.Replace(ev("CLI-4", "P2"), "investigating", "fixed", 1)
	code, out, errOut = herald(t, nil, bad, "publish", "--data", data, "--server", server, "-")
	if code != exitUsage || !strings.Contains(errOut, "event 1: invalid event: status: must be one of") || strings.Contains(errOut, "invalid event: invalid event") {
		t.Fatalf("--server, bad status = %d\n%s\n%s", code, out, errOut)
	}
}

// TestVersion: herald version prints the module version, the VCS
// revision and time, and the Go version the binary was built with.
func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, errOut := herald(t, nil, "", "version")
	if code != exitOK || !strings.HasPrefix(out, "herald ") || !strings.Contains(out, runtime.Version()) {
		t.Fatalf("version = %d %q %q", code, out, errOut)
	}
	if code, _, _ := herald(t, nil, "", "version", "extra"); code != exitUsage {
		t.Errorf("version extra = %d", code)
	}
	info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/heraldhq/herald", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-04T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionLine(info), "herald v1.4.0 (rev 0123456789ab, 2026-12-04T10:00:00Z, modified) go1.26.8"; got != want {
		t.Errorf("versionLine = %q, want %q", got, want)
	}
	if got := versionLine(&debug.BuildInfo{GoVersion: "go1.26.8"}); got != "herald (devel) go1.26.8" {
		t.Errorf("versionLine without VCS = %q", got)
	}
}

// TestSMSWithAPIKeyStarts: Twilio with an API key and no auth token
// starts (it could not: status callbacks need the auth token); receipts
// are then off, with a warning.
func TestSMSWithAPIKeyStarts(t *testing.T) {
	t.Parallel()
	cfg := &fileConfig{Data: t.TempDir(), PublicURL: "https://herald.pay.example"}
	cfg.SMS.AccountSID = "AC" + strings.Repeat("0", 32)
	cfg.SMS.APIKey = "SK" + strings.Repeat("1", 32)
	cfg.SMS.APISecret = "apisecret0123456789"
	cfg.SMS.From = "+33612345678"
	logs := &channelstest.SyncBuffer{}
	chans, live, _, err := buildChannels(cfg, nil, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("an API key without an auth token: %v", err)
	}
	ch, ok := chans[channels.SMS].(*sms.Channel)
	if !ok || !live[channels.SMS] || ch.CallbackVerifier() != nil {
		t.Fatalf("SMS channel %T live %v", chans[channels.SMS], live[channels.SMS])
	}
	if !strings.Contains(logs.String(), "SMS delivery receipts are off") {
		t.Errorf("no warning:\n%s", logs.String())
	}
	// With the auth token, receipts are on.
	cfg.SMS.AuthToken = "authtoken0123456789"
	chans, _, _, err = buildChannels(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil || chans[channels.SMS].(*sms.Channel).CallbackVerifier() == nil {
		t.Fatalf("with the auth token: %v", err)
	}
}

// TestSlackEndpointsConfigurable: slack.api_url (GovSlack, a local
// Slack-shaped server) and slack.webhook_hosts reach the channel, and the
// hosts the subscriber rules accept follow them.
func TestSlackEndpointsConfigurable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeFile(t, dir, "herald.yaml", "slack:\n  api_url: https://slack-gov.com/api/\n  webhook_hosts: [hooks.slack-gov.com, hooks.chat.pay.example]\n")
	cfg, err := loadConfig(file, func(k string) string { return map[string]string{"HERALD_SLACK_API_URL": ""}[k] })
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.slackConfig(nil, nil, nil)
	if sc.APIURL != "https://slack-gov.com/api/" || strings.Join(sc.WebhookHosts, ",") != "hooks.slack-gov.com,hooks.chat.pay.example" {
		t.Fatalf("slack config %+v", sc)
	}
	cfg, err = loadConfig(file, func(k string) string {
		return map[string]string{"HERALD_SLACK_API_URL": "http://127.0.0.1:9999/api/"}[k]
	})
	if err != nil || cfg.slackConfig(nil, nil, nil).APIURL != "http://127.0.0.1:9999/api/" {
		t.Fatalf("HERALD_SLACK_API_URL: %v", err)
	}
	rules := cfg.subscriberRules(nil, nil)
	if err := rules.SlackWebhook("https://hooks.chat.pay.example/services/T0/B0/x"); err != nil {
		t.Errorf("a configured host refused: %v", err)
	}
	if err := rules.SlackWebhook("https://hooks.slack.com/services/T0/B0/x"); err == nil {
		t.Error("a host left out of webhook_hosts accepted")
	}
}
