package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/channels/outbox"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/ingest"
	"github.com/heraldhq/herald/internal/eventtest"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

const (
	adminToken = "test-admin-token-0123456789"
	// testSecret is a valid Standard Webhooks secret (24 random bytes).
	testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// testBundle is a running Herald behind its admin API: an embedded
// nats-server with JetStream, the engine with the real webhook channel and
// outboxes, the API on a loopback port, and a webhook receiver that
// verifies signatures.
type testBundle struct {
	t    *testing.T
	ctx  context.Context
	nc   *nats.Conn
	d    *dispatcher.Dispatcher
	srv  *httptest.Server
	recv *receiver
	logs *channelstest.SyncBuffer
	reg  *prometheus.Registry
}

type bundleOpts struct {
	dispatcher func(*dispatcher.Config)
	api        func(*Config)
	noRun      bool
}

func setup(t *testing.T, opts bundleOpts) *testBundle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), Port: -1, Host: "127.0.0.1", NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	logs := &channelstest.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	catalog, err := incident.NewCatalog(incident.DefaultComponents())
	if err != nil {
		t.Fatal(err)
	}
	renderer, err := templates.New(templates.Config{Components: catalog, PublicURL: "https://herald.example"})
	if err != nil {
		t.Fatal(err)
	}
	wh, err := webhook.New(webhook.Config{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Timeout: 5 * time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	chans := map[string]channels.Channel{channels.Webhook: wh}
	outDir := t.TempDir()
	for _, name := range []string{channels.Email, channels.SMS, channels.Slack} {
		if chans[name], err = outbox.New(outbox.Config{Dir: outDir, Channel: name}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	dcfg := dispatcher.Config{SecretKey: secret.Value(strings.Repeat("k", 32)), Logger: logger, ShutdownTimeout: 5 * time.Second, Registerer: reg}
	if opts.dispatcher != nil {
		opts.dispatcher(&dcfg)
	}
	d, err := dispatcher.New(ctx, dcfg, dispatcher.Deps{Conn: nc, Channels: chans, Renderer: renderer, Catalog: catalog,
		Rules: subscribers.Rules{Components: catalog, AllowHTTPWebhooks: true}})
	if err != nil {
		t.Fatal(err)
	}
	acfg := Config{AdminToken: secret.Value(adminToken), Gatherer: reg, Logger: logger,
		Sources: ingest.NewSources().Handler()}
	if opts.api != nil {
		opts.api(&acfg)
	}
	s, err := New(d, acfg)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{t: t, ctx: ctx, nc: nc, d: d, srv: httptest.NewServer(s), recv: newReceiver(t), logs: logs, reg: reg}
	done := make(chan struct{})
	if opts.noRun {
		close(done)
	} else {
		go func() {
			defer close(done)
			// An error once the test stops the engine is the stop's
			// (a stop while the loops still start ends Run with
			// "consumer: context canceled"); before, it is a failure.
			if err := d.Run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("Run: %v", err)
			}
		}()
		b.waitFor("the engine ready", 10*time.Second, d.Ready)
	}
	t.Cleanup(func() {
		b.srv.Close()
		cancel()
		<-done
		nc.Close()
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
		if strings.Contains(logs.String(), "MfKQ9r8G") {
			t.Errorf("a secret leaked into the logs")
		}
	})
	return b
}

// gatherer returns the registry the engine's metrics are in.
func (b *testBundle) gatherer() prometheus.Gatherer { return b.reg }

// waitFor polls cond until it holds or the timeout expires.
func (b *testBundle) waitFor(what string, timeout time.Duration, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// do sends a request to the API and decodes a JSON answer into out (if not
// nil); it returns the status and the raw answer.
func (b *testBundle) do(method, path, token, body string, out any) (int, []byte) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			b.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode, data
}

// putSubscriber stores a subscriber through the API and waits until the
// engine's index has it.
func (b *testBundle) putSubscriber(doc string) {
	b.t.Helper()
	var sub struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(doc), &sub); err != nil {
		b.t.Fatal(err)
	}
	if code, body := b.do("PUT", "/v1/subscribers/"+sub.ID, adminToken, doc, nil); code != http.StatusCreated && code != http.StatusOK {
		b.t.Fatalf("put %s: %d %s", sub.ID, code, body)
	}
	b.waitFor("the index to see "+sub.ID, 5*time.Second, func() bool {
		page, err := b.d.ListSubscribers(b.ctx, "", 0)
		if err != nil {
			return false
		}
		for _, s := range page.Items {
			if s.ID == sub.ID {
				return true
			}
		}
		return false
	})
}

// subscriber returns a subscriber document with one webhook endpoint on the
// receiver's path /<id>.
func (b *testBundle) subscriber(id, locale string) string {
	return fmt.Sprintf(`{"id":%q,"name":"Merchant %s","locale":%q,"timezone":"Europe/Paris",
"endpoints":[{"id":"wh","channel":"webhook","url":%q,"secret":%q}]}`, id, id, locale, b.recv.url("/"+id), testSecret)
}

// event builds a small event (eventtest.Event).
func event(incidentID string, seq int, status string, extra ...string) string {
	return eventtest.Event(incidentID, seq, status, extra...)
}

// receiver is a merchant's webhook endpoint: it verifies every signature
// with the Standard Webhooks library and counts the verified requests per
// path.
type receiver struct {
	srv *httptest.Server
	wh  *standardwebhooks.Webhook

	mu       sync.Mutex
	verified map[string]int
}

func newReceiver(t testing.TB) *receiver {
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{wh: wh, verified: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.wh.Verify(body, req.Header) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		r.verified[req.URL.Path]++
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url(path string) string { return r.srv.URL + path }

// delivered counts the verified requests received on path.
func (r *receiver) delivered(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.verified[path]
}
