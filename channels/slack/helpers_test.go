package slack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/slack-go/slack/slacktest"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/secret"
)

const (
	// botToken is the bot token of tests: it must never show.
	botToken = "xoxb-1111111111-2222222222222-s3cr3tB0tT0k3nV4lu3"
	// hookToken is the secret part of test webhook URLs.
	hookToken = "Zk9sS3cr3tW3bh00kT0k3n"
	// channelID is the Slack channel of bot-mode tests.
	channelID = "C0123ABCD"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// js is the JetStream of the embedded server every test shares (see
// TestMain); each test creates its own bucket.
var js jetstream.JetStream

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "herald-slack-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The server's warnings go to stderr: a stream it fails to create
	// says why there.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := broker.Open(context.Background(), broker.Config{DataDir: dir, Listen: "none", Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Close()
	js = b.JS
	return m.Run()
}

var bucketSeq atomic.Int64

// newBucket creates a threads bucket for t, configured as production's.
func newBucket(t testing.TB) jetstream.KeyValue {
	t.Helper()
	cfg := ThreadsBucketConfig()
	cfg.Bucket = fmt.Sprintf("%s_%d", ThreadsBucket, bucketSeq.Add(1))
	kv, err := js.CreateKeyValue(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Buckets are not deleted: the server's directory goes at exit, and
	// deleting a stream makes nats-server remove the account's streams
	// directory when it is left empty, racing with another test creating
	// its bucket there ("could not create storage directory").
	return kv
}

// apiCall is one Web API call the fake Slack received, and its answer.
type apiCall struct {
	Method string // "chat.postMessage"
	Form   url.Values
	Status int
	Answer map[string]any
}

// slackAPI is slack-go's slacktest server, behind a recording proxy: tests
// inspect exactly what Slack received. slacktest lacks chat.update and
// chat.delete; they answer as Slack does.
type slackAPI struct {
	URL   string
	mu    sync.Mutex
	calls []apiCall
	seq   atomic.Int64
}

// newSlackAPI starts the fake Slack. binders override slacktest's handlers
// (custom answers: errors, rate limits).
func newSlackAPI(t testing.TB, binders ...slacktest.Binder) *slackAPI {
	t.Helper()
	s := &slackAPI{}
	binders = append(binders, func(c slacktest.Customize) {
		c.Handle("/chat.update", s.okHandler)
		c.Handle("/chat.delete", s.okHandler)
	})
	srv := slacktest.NewTestServer(binders...)
	srv.Start()
	t.Cleanup(srv.Stop)
	target, err := url.Parse(srv.GetAPIURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		out := rec.Body.Bytes()
		var answer map[string]any
		_ = json.Unmarshal(out, &answer)
		// slacktest's ts counts seconds; Slack's are unique per channel.
		if _, ok := answer["ts"].(string); ok && r.URL.Path == "/chat.postMessage" {
			answer["ts"] = fmt.Sprintf("%d.%06d", time.Now().Unix(), s.seq.Add(1))
			out, _ = json.Marshal(answer)
		}
		s.mu.Lock()
		s.calls = append(s.calls, apiCall{Method: r.URL.Path[1:], Form: form, Status: rec.Code, Answer: answer})
		s.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(out)
	}))
	t.Cleanup(front.Close)
	s.URL = front.URL + "/"
	return s
}

// okHandler answers chat.update and chat.delete.
func (s *slackAPI) okHandler(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": r.Form.Get("channel"), "ts": r.Form.Get("ts"), "text": r.Form.Get("text")})
}

// Calls returns the calls received so far.
func (s *slackAPI) Calls() []apiCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]apiCall(nil), s.calls...)
}

// count returns how many calls of method were received.
func (s *slackAPI) count(method string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Method == method {
			n++
		}
	}
	return n
}

// answer is a Web API handler that answers every call with status, headers
// and body, as slacktest cannot.
func answer(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// override replaces slacktest's handler of method.
func override(method string, h http.HandlerFunc) slacktest.Binder {
	return func(c slacktest.Customize) { c.Handle("/"+method, h) }
}

// botConfig is the bot-mode configuration of tests: no limiter (tests of
// the limiter set it), timeouts longer than any test.
func botConfig(api *slackAPI, threads ThreadStore) Config {
	return Config{
		BotToken:           secret.Value(botToken),
		APIURL:             api.URL,
		Threads:            threads,
		PerChannelInterval: -1,
		Timeout:            30 * time.Second,
	}
}

func newChannel(t testing.TB, cfg Config) *Channel {
	t.Helper()
	ch, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.CloseIdleConnections)
	return ch
}

// webhookConfig is the webhook-mode configuration of tests: plain HTTP to
// a receiver on 127.0.0.1, through an egress client allowing loopback.
func webhookConfig(t testing.TB) Config {
	t.Helper()
	client, err := egress.NewClient(egress.Config{Allow: loopback, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return Config{HTTPClient: client, WebhookHosts: []string{"127.0.0.1"}, AllowHTTP: true, PerChannelInterval: -1}
}

// hookURL is a webhook URL on base, shaped like Slack's.
func hookURL(base string) string { return base + "/services/T0TEST01/B0TEST02/" + hookToken }

// update is one rendered update of the corpus incident in testdata.
type update struct {
	ID         string          `json:"id"`
	IncidentID string          `json:"incident_id"`
	Sequence   int64           `json:"sequence"`
	Status     string          `json:"status"`
	Closed     bool            `json:"closed"`
	Locale     string          `json:"locale"`
	Subject    string          `json:"subject"`
	Text       string          `json:"text"`
	Body       json.RawMessage `json:"body"`
	Parent     json.RawMessage `json:"parent"`
}

// message is the delivery of u as the dispatcher builds it.
func (u update) message() *channels.Message {
	return &channels.Message{
		ID:          "dlv_" + u.IncidentID + "_" + strconv.FormatInt(u.Sequence, 10),
		Kind:        "incident.update",
		IncidentID:  u.IncidentID,
		Sequence:    u.Sequence,
		Status:      u.Status,
		Closed:      u.Closed,
		Locale:      u.Locale,
		Subject:     u.Subject,
		Text:        u.Text,
		Body:        u.Body,
		Parent:      u.Parent,
		ContentType: "application/json",
		Attempt:     1,
	}
}

// corpusIncident returns the updates of a corpus incident (INC-2f9cd51f, 8
// updates from investigating to post-mortem), as package templates renders
// them for Slack (status page https://status.example.com, recipient fr-FR
// in Europe/Paris, updates accepted at 2025-05-03T14:11Z): the Body and
// Parent the dispatcher passes. Regenerate the file when the Slack
// templates change.
func corpusIncident(t testing.TB) []update {
	t.Helper()
	f, err := os.Open("testdata/INC-2f9cd51f.fr.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []update
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		var u update
		if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 5 {
		t.Fatalf("%d updates in testdata", len(out))
	}
	return out
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

// sent reports whether call carried the rendered message m (text and
// blocks), as Slack received it.
func sent(t testing.TB, call apiCall, m json.RawMessage) bool {
	t.Helper()
	var want struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(m, &want); err != nil {
		t.Fatal(err)
	}
	return call.Form.Get("text") == want.Text && sameJSON(t, []byte(call.Form.Get("blocks")), want.Blocks)
}

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 5, 3, 14, 11, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
