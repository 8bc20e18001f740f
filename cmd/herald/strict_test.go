package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels/channelstest"
)

// serveInBackground runs `herald serve` in-process until the test ends (or
// stop is called) and returns its stderr and exit status once it stopped.
func serveInBackground(t *testing.T, env map[string]string, args ...string) (logs *channelstest.SyncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &channelstest.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), &stdio{in: strings.NewReader(""), out: logs, err: logs, env: func(k string) string { return env[k] }})
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
	base := []string{"--data", data, "--listen", "127.0.0.1:0", "--nats-listen", "none"}
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
	waitLog(t, logs, "HTTP API listening")
	if !strings.Contains(logs.String(), "name=sms mode=\"outbox") {
		t.Errorf("SMS not reported as going to the outbox:\n%s", logs.String())
	}
	if code := stop(); code != exitOK {
		t.Fatalf("serve stopped with %d:\n%s", code, logs.String())
	}

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
	waitLog(t, logs, "HTTP API listening")
	if code := stop(); code != exitOK {
		t.Fatalf("strict serve stopped with %d:\n%s", code, logs.String())
	}
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
