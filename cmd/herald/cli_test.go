package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/slack"
	"github.com/heraldhq/herald/channels/sms"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
)

// herald runs one CLI command in-process and returns its exit status,
// stdout and stderr.
func herald(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, &stdio{in: strings.NewReader(stdin), out: &out, err: &errb, env: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, exitUsage, "Commands:"},
		{[]string{"--help"}, exitOK, "Commands:"},
		{[]string{"frobnicate"}, exitUsage, "frobnicate"},
		{[]string{"serve", "--help"}, exitOK, "-nats-url"},
		{[]string{"serve", "--no-such-flag"}, exitUsage, "no-such-flag"},
		{[]string{"subscribers"}, exitUsage, "import"},
		{[]string{"publish"}, exitUsage, "FILE"},
		{[]string{"dlq", "replay"}, exitUsage, ""},
		{[]string{"ledger"}, exitUsage, "ledger export"},
		{[]string{"ledger", "import"}, exitUsage, "unknown subcommand"},
		{[]string{"recall"}, exitUsage, "EVENT_ID"},
		{[]string{"publish", "--help"}, exitOK, "-wait"},
	}
	for _, tt := range tests {
		code, out, errOut := herald(t, nil, "", tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("herald %v = %d\nstdout: %s\nstderr: %s", tt.args, code, out, errOut)
		}
	}
}

func TestCLIConfig(t *testing.T) {
	dir := t.TempDir()
	yamlFile := writeFile(t, dir, "herald.yaml", `
data: /srv/herald
listen: 127.0.0.1:9000
log: {format: json, level: debug}
nats: {url: "nats://a:4222,nats://b:4222", replicas: 3}
dispatch:
  max_event_bytes: 65536
  channels:
    sms: {rate: 1, latest_only: false, retry: {schedule: [30s, 2m, 10m]}}
webhook: {allow: ["127.0.0.1/32"], timeout: 10s}
`)
	tomlFile := writeFile(t, dir, "herald.toml", `
data = "/srv/herald"
[nats]
url = "nats://a:4222"
[webhook]
timeout = "10s"
`)
	for _, f := range []string{yamlFile, tomlFile} {
		cfg, err := loadConfig(f, func(k string) string {
			return map[string]string{"HERALD_DATA": "/from/env", "HERALD_ADMIN_TOKEN": "tok"}[k]
		})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if cfg.Data != "/from/env" || cfg.NATS.URL == "" || cfg.AdminToken.Reveal() != "tok" || cfg.Webhook.Timeout != 10*time.Second {
			t.Errorf("%s: %+v", f, cfg)
		}
	}
	for name, content := range map[string]string{
		"bad.yaml": "nats: {ulr: x}\n",
		"bad.toml": "[nats]\nulr = \"x\"\n",
		"bad.ini":  "x=1\n",
	} {
		if _, err := loadConfig(writeFile(t, dir, name, content), func(string) string { return "" }); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	// The example configuration shipped with Herald loads.
	if _, err := loadConfig(filepath.Join("..", "..", "examples", "herald.yaml"), func(string) string { return "" }); err != nil {
		t.Errorf("examples/herald.yaml: %v", err)
	}
}

// TestCLIAdmin runs the admin commands against the embedded server of a
// data directory: import with per-line errors, list/get/rm, publish of good
// and bad events, dead letters.
func TestCLIAdmin(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	subs := writeFile(t, dir, "subs.jsonl", strings.Join([]string{
		`{"id":"m1","locale":"fr-FR","endpoints":[{"id":"wh","channel":"webhook","url":"https://m1.example/h","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]}`,
		`{"id":"m2","locale":"fr-FR","endpoints":[{"id":"sms","channel":"sms","address":"+33 1"}]}`,
		`{"id":"m3","locale":"it","endpoints":[{"id":"mail","channel":"email","address":"info@m3.example"}]}`,
		`{"id":"m4",`,
	}, "\n"))
	code, out, errOut := herald(t, nil, "", "subscribers", "import", "--data", data, subs)
	if code != exitUsage || !strings.Contains(out, "imported 2 subscribers") ||
		!strings.Contains(errOut, "line 2 (m2): endpoints[0].address") || !strings.Contains(errOut, "line 4") {
		t.Fatalf("import = %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = herald(t, nil, "", "subscribers", "list", "--data", data)
	if code != exitOK || !strings.Contains(out, "m1") || !strings.Contains(out, "m3") || strings.Contains(out, "m2") {
		t.Fatalf("list = %d\n%s", code, out)
	}
	code, out, _ = herald(t, nil, "", "subscribers", "get", "--data", data, "m1")
	if code != exitOK || !strings.Contains(out, "m1.example") || strings.Contains(out, "MfKQ9r8G") {
		t.Fatalf("get = %d (secret must be masked)\n%s", code, out)
	}
	if code, _, _ = herald(t, nil, "", "subscribers", "get", "--data", data, "nobody"); code == exitOK {
		t.Error("get of an unknown subscriber succeeded")
	}
	if code, _, errOut = herald(t, nil, "", "subscribers", "rm", "--data", data, "m3"); code != exitOK {
		t.Fatalf("rm = %d %s", code, errOut)
	}
	if code, _, _ = herald(t, nil, "", "subscribers", "get", "--data", data, "m3"); code == exitOK {
		t.Error("m3 still there after rm")
	}

	// Publishing: one bad event is reported with its field and the good
	// ones still go out.
	events := strings.Join([]string{
		`{"id":"INC-1:1","incident_id":"INC-1","sequence":1,"status":"investigating","title":"T","body":"B"}`,
		`{"id":"INC-1:2","incident_id":"INC-1","sequence":0,"status":"investigating","title":"T","body":"B"}`,
		`{"id":"INC-1:3","incident_id":"INC-1","sequence":3,"status":"resolved","title":"T","body":"B"}`,
	}, "\n")
	code, out, errOut = herald(t, nil, events, "publish", "--data", data, "-")
	if code != exitUsage || !strings.Contains(errOut, "sequence: must be >= 1") || strings.Count(out, "published") != 2 {
		t.Fatalf("publish = %d\n%s\n%s", code, out, errOut)
	}
	// Re-publishing is deduplicated by the event id.
	code, out, _ = herald(t, nil, events[:strings.IndexByte(events, '\n')], "publish", "--data", data, "-")
	if code != exitOK || !strings.Contains(out, "already published") {
		t.Errorf("re-publish = %d\n%s", code, out)
	}
	if code, out, errOut = herald(t, nil, "", "dlq", "list", "--data", data); code != exitOK {
		t.Errorf("dlq list = %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = herald(t, nil, "", "suppressions", "list", "--data", data); code != exitOK {
		t.Errorf("suppressions list = %d %s", code, errOut)
	}
}

// TestProviderRateIsTheLoopsLimit: a live provider's rate becomes the
// delivery loop's rate limit (the one limiter), unless dispatch sets one;
// an unconfigured provider (outbox) gets none.
func TestProviderRateIsTheLoopsLimit(t *testing.T) {
	for _, tc := range []struct {
		name, yaml         string
		emailRate, smsRate float64
	}{
		{"outbox", "data: /d\n", 0, 0},
		{"providers", "email: {host: smtp.example, rate: 20}\nsms: {account_sid: AC1}\n", 20, sms.DefaultRate},
		{"sms rate", "sms: {account_sid: AC1, rate: 3}\n", 0, 3},
		{"dispatch wins", "sms: {account_sid: AC1, rate: 3}\ndispatch: {channels: {sms: {rate: 1}}}\n", 0, 1},
	} {
		cfg, err := loadConfig(writeFile(t, t.TempDir(), "h.yaml", tc.yaml), func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		d := cfg.dispatcherConfig()
		if got := d.Channels[channels.Email].Rate; got != tc.emailRate {
			t.Errorf("%s: email rate %v, want %v", tc.name, got, tc.emailRate)
		}
		if got := d.Channels[channels.SMS].Rate; got != tc.smsRate {
			t.Errorf("%s: sms rate %v, want %v", tc.name, got, tc.smsRate)
		}
	}
}

// TestSlackIntervalIsTheLoopsPace: slack.per_channel_interval paces the
// Slack delivery loop per destination (jobs wait for their turn without
// holding a send slot), unless dispatch sets a pace itself.
func TestSlackIntervalIsTheLoopsPace(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		pace       time.Duration
	}{
		{"default", "data: /d\n", 0}, // the dispatcher's default (1 s) applies
		{"slack interval", "slack: {per_channel_interval: 3s}\n", 3 * time.Second},
		{"dispatch wins", "slack: {per_channel_interval: 3s}\ndispatch: {channels: {slack: {pace: 2s}}}\n", 2 * time.Second},
		{"dispatch off", "dispatch: {channels: {slack: {pace: -1s, max_destination_wait: 30s}}}\n", -time.Second},
	} {
		cfg, err := loadConfig(writeFile(t, t.TempDir(), "h.yaml", tc.yaml), func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		cc := cfg.dispatcherConfig().Channels[channels.Slack]
		if cc.Pace != tc.pace {
			t.Errorf("%s: slack pace %v, want %v", tc.name, cc.Pace, tc.pace)
		}
		if tc.name == "dispatch off" && cc.MaxDestinationWait != 30*time.Second {
			t.Errorf("%s: max destination wait %v, want 30s", tc.name, cc.MaxDestinationWait)
		}
	}
}

// TestWebhookRetryAndConnectionKeys: the webhook section's retry policy,
// connection pool and DNS cache reach the channel, its dispatch loop and
// the other guarded clients, in YAML and TOML.
func TestWebhookRetryAndConnectionKeys(t *testing.T) {
	dir := t.TempDir()
	yamlFile := writeFile(t, dir, "h.yaml", `
dispatch: {channels: {webhook: {per_destination: 40}}}
webhook:
  permanent_statuses: [400, 404]
  disable_after: 72h
  idle_conn_timeout: 45s
  max_idle_conns: 2048
  tls_session_cache: 64
  dns: {servers: ["127.0.0.53", "[::1]:5353"], min_ttl: 10s, max_ttl: 2m, cache_size: 100, timeout: 1s}
`)
	tomlFile := writeFile(t, dir, "h.toml", `
[dispatch.channels.webhook]
per_destination = 40
[webhook]
permanent_statuses = [400, 404]
disable_after = "72h"
idle_conn_timeout = "45s"
max_idle_conns = 2048
tls_session_cache = 64
[webhook.dns]
servers = ["127.0.0.53", "[::1]:5353"]
min_ttl = "10s"
max_ttl = "2m"
cache_size = 100
timeout = "1s"
`)
	for _, f := range []string{yamlFile, tomlFile} {
		cfg, err := loadConfig(f, func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got := cfg.dispatcherConfig().Channels[channels.Webhook].DisableAfter; got != 72*time.Hour {
			t.Errorf("%s: disable after %v", f, got)
		}
		ec := cfg.webhookEgress(nil)
		want := egress.DNSConfig{Servers: []string{"127.0.0.53", "[::1]:5353"}, MinTTL: 10 * time.Second, MaxTTL: 2 * time.Minute, MaxEntries: 100, Timeout: time.Second}
		if ec.IdleConnTimeout != 45*time.Second || ec.MaxIdleConns != 2048 || ec.TLSSessionCacheSize != 64 || ec.MaxIdleConnsPerHost != 40 ||
			!slices.Equal(ec.DNS.Servers, want.Servers) || ec.DNS.MinTTL != want.MinTTL || ec.DNS.MaxTTL != want.MaxTTL || ec.DNS.MaxEntries != want.MaxEntries || ec.DNS.Timeout != want.Timeout {
			t.Errorf("%s: egress config %+v", f, ec)
		}
		if !slices.Equal(cfg.Webhook.PermanentStatuses, []int{400, 404}) {
			t.Errorf("%s: permanent statuses %v", f, cfg.Webhook.PermanentStatuses)
		}
		cfg.Data = t.TempDir() // the outboxes
		chans, _, _, err := buildChannels(cfg, nil, slog.New(slog.DiscardHandler))
		if err != nil || chans[channels.Webhook] == nil {
			t.Errorf("%s: channels %v", f, err)
		}
	}
	// Defaults: five days, 16 idle connections per host.
	cfg, err := loadConfig(writeFile(t, dir, "d.yaml", "data: /d\n"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.dispatcherConfig().Channels[channels.Webhook]; got.DisableAfter != 0 {
		t.Errorf("disable after %v, want the dispatcher's default", got.DisableAfter)
	}
	if got := cfg.webhookEgress(nil).MaxIdleConnsPerHost; got != 16 {
		t.Errorf("idle connections per host %d, want 16", got)
	}
	// A status the channel cannot treat as permanent is refused at start.
	cfg.Data, cfg.Webhook.PermanentStatuses = t.TempDir(), []int{410}
	if _, _, _, err := buildChannels(cfg, nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "410") {
		t.Errorf("permanent 410: err = %v", err)
	}
}

// TestSubscriberRulesRefuseInternalWebhooks: subscribers written through
// Herald are checked against the webhook SSRF policy: an internal address
// is a 400 on the field, not a send that fails later; the allow-list
// opens what it names.
func TestSubscriberRulesRefuseInternalWebhooks(t *testing.T) {
	cfg, err := loadConfig(writeFile(t, t.TempDir(), "h.yaml", "data: /d\n"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := cfg.catalog()
	if err != nil {
		t.Fatal(err)
	}
	sub := func(url string) *subscribers.Subscriber {
		return &subscribers.Subscriber{ID: "m1", Locale: "fr", Endpoints: []subscribers.Endpoint{
			{ID: "wh", Channel: channels.Webhook, URL: url, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}
	}
	rules := cfg.subscriberRules(catalog, nil)
	for _, url := range []string{"https://127.0.0.1/h", "https://169.254.169.254/latest", "https://[::1]/h", "https://2130706433/h", "https://10.1.2.3/h"} {
		var fe subscribers.FieldErrors
		if err := rules.Normalize(sub(url)); !errors.As(err, &fe) || fe[0].Field != "endpoints[0].url" {
			t.Errorf("%s: Normalize = %v, want endpoints[0].url refused", url, err)
		}
	}
	if err := rules.Normalize(sub("https://hooks.merchant.example/h")); err != nil {
		t.Errorf("public URL refused: %v", err)
	}
	cfg.Webhook.AllowHTTP = true
	if err := cfg.subscriberRules(catalog, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}).Normalize(sub("http://127.0.0.1:9/h")); err != nil {
		t.Errorf("allowed loopback refused: %v", err)
	}
}

// TestSubscriberRulesMatchTheChannels: every address a channel would refuse
// at send time is refused when the subscriber is written, and what the
// channel takes is accepted (the rules call the channels' own checks).
func TestSubscriberRulesMatchTheChannels(t *testing.T) {
	cfg, err := loadConfig(writeFile(t, t.TempDir(), "h.yaml", "data: /d\n"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := cfg.catalog()
	if err != nil {
		t.Fatal(err)
	}
	rules := cfg.subscriberRules(catalog, nil)
	const key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	check := func(what string, ep subscribers.Endpoint, channelErr error) {
		t.Helper()
		err := rules.Normalize(&subscribers.Subscriber{ID: "m1", Locale: "fr", Endpoints: []subscribers.Endpoint{ep}})
		if (err == nil) != (channelErr == nil) {
			t.Errorf("%s: rules say %v, the channel says %v", what, err, channelErr)
		}
	}
	for _, n := range []string{"+33 6 12 34 56 78", "+49 30 1234567890123", "+1 650 253 0000 ext. 12", "0612345678", "+33 6 12"} {
		_, cerr := sms.Normalize(n)
		check("phone "+n, subscribers.Endpoint{ID: "e", Channel: channels.SMS, Address: n}, cerr)
	}
	for _, id := range []string{"C0123ABCD", "C0123", "G01234567", "c0123abcd"} {
		var cerr error
		if !slack.IsChannelID(id) {
			cerr = slack.ErrInvalidAddress
		}
		check("slack channel "+id, subscribers.Endpoint{ID: "e", Channel: channels.Slack, SlackChannel: id}, cerr)
	}
	for _, u := range []string{"https://hooks.slack.com/services/T0/B0/X", "https://hooks.slack.com/", "https://hooks.slack.com/services/T0#x", "https://evil.example/services/T0", "http://hooks.slack.com/services/T0"} {
		check("slack hook "+u, subscribers.Endpoint{ID: "e", Channel: channels.Slack, WebhookURL: secret.Value(u)}, slack.CheckWebhookURL(u, nil, false))
	}
	for _, s := range []string{key, key + " " + key, "whsec_short", key + " x", strings.Repeat(key+" ", 5)} {
		check("webhook secret", subscribers.Endpoint{ID: "e", Channel: channels.Webhook, URL: "https://merchant.example/h", Secret: secret.Value(s)}, webhook.CheckSecret(s))
	}
}

// TestEmailOutboxIsSigned: with no SMTP relay, the email outbox writes the
// message the relay would get, From, Reply-To and DKIM signature included.
func TestEmailOutboxIsSigned(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, dir, "dkim.pem", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	cfg, err := loadConfig(writeFile(t, dir, "h.yaml", fmt.Sprintf(`
data: %s
email:
  from: "Status <status@pay.example>"
  reply_to: support@pay.example
  dkim: {domain: pay.example, selector: herald, key_file: %s}
`, dir, keyFile)), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	chans, live, _, err := buildChannels(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if live[channels.Email] {
		t.Fatal("email is live without a relay")
	}
	receipt, err := chans[channels.Email].Send(context.Background(), channels.Endpoint{SubscriberID: "m1", ID: "mail", Address: "ops@dupont.example"},
		&channels.Message{ID: "dlv_outbox_dkim", Kind: "incident.update", Subject: "Panne", Text: "Nous enquêtons."})
	if err != nil || !receipt.Outbox {
		t.Fatalf("send: %+v, %v", receipt, err)
	}
	var eml []byte
	_ = filepath.WalkDir(filepath.Join(dir, "outbox"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".eml") {
			eml, _ = os.ReadFile(p)
		}
		return nil
	})
	for _, want := range []string{"DKIM-Signature: ", "d=pay.example", "s=herald", "From: \"Status\" <status@pay.example>", "Reply-To: <support@pay.example>"} {
		if !bytes.Contains(eml, []byte(want)) {
			t.Errorf("outbox .eml lacks %q:\n%s", want, eml)
		}
	}
}

// TestCIRunsTheREADMETestCommand: CI's entry point runs the README's test
// command, word for word, so the two cannot drift apart.
func TestCIRunsTheREADMETestCommand(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "Run the whole test suite")
	if !ok {
		t.Fatal("README has no test command section")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("README's test section has no sh block")
	}
	command, _, _ := strings.Cut(block, "\n")
	ci, err := os.ReadFile(filepath.Join("..", "..", ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ci), "\n") {
		if strings.TrimSpace(line) == command {
			return
		}
	}
	t.Errorf(".ci/run does not run the README's test command %q", command)
}

// TestPreviewWritesTheSentEmail: herald preview --out writes the files a
// subscriber would receive, message.eml being what the email channel
// submits (its renderer: sender, Message-ID, the rendered headers).
func TestPreviewWritesTheSentEmail(t *testing.T) {
	out := t.TempDir()
	code, stdout, errOut := herald(t, nil, "", "preview", "--event", filepath.Join("..", "..", "examples", "incidents.jsonl"),
		"--locale", "it", "--channel", "email", "--name", "Boulangerie Dupont", "--out", out)
	if code != exitOK {
		t.Fatalf("preview: exit %d: %s", code, errOut)
	}
	for _, f := range []string{"message.html", "message.txt", "message.eml"} {
		if !strings.Contains(stdout, filepath.Join(out, f)) {
			t.Errorf("preview did not write %s: %s", f, stdout)
		}
	}
	eml, err := os.ReadFile(filepath.Join(out, "message.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Subject:", "From: \"Herald\" <status@example.com>", "To: \"Boulangerie Dupont\" <subscriber@example.com>",
		"Message-ID: <preview@example.com>", "List-Unsubscribe: <http://localhost:8080/unsubscribe/PREVIEW>",
		"Content-Type: multipart/alternative", "Content-Type: text/html; charset=UTF-8"} {
		if !bytes.Contains(eml, []byte(h)) {
			t.Errorf("message.eml lacks %q:\n%s", h, eml)
		}
	}
}

// TestPreviewUsesTheConfiguredEmailHeaders: the preview renders as serve
// does, with the configured List-Id and mailto unsubscribe address.
func TestPreviewUsesTheConfiguredEmailHeaders(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "herald.yaml", "public_url: https://status.pay.example\nemail:\n  from: Status <status@pay.example>\n  list_id: Pay incidents <incidents.pay.example>\n  unsubscribe_mailto: unsubscribe@pay.example\n")
	code, stdout, errOut := herald(t, nil, "", "preview", "--config", conf, "--event", filepath.Join("..", "..", "examples", "incidents.jsonl"),
		"--locale", "fr", "--channel", "email", "--out", dir)
	if code != exitOK {
		t.Fatalf("preview: exit %d: %s %s", code, stdout, errOut)
	}
	eml, err := os.ReadFile(filepath.Join(dir, "message.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"List-Id: Pay incidents <incidents.pay.example>", "mailto:unsubscribe@pay.example", "https://status.pay.example/unsubscribe/PREVIEW"} {
		if !bytes.Contains(eml, []byte(h)) {
			t.Errorf("message.eml lacks %q:\n%s", h, eml)
		}
	}
}
