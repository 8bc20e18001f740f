package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/slack"
	"github.com/heraldhq/herald/secret"
	"github.com/heraldhq/herald/subscribers"
)

// slackAPI is a local server speaking the Slack Web API's shape for the
// two methods bot mode uses; it records the calls.
type slackAPI struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []slackCall
	ts    int
}

type slackCall struct {
	method, channel, ts, threadTS, text string
	// at is when the server received the call.
	at time.Time
}

func newSlackAPI(t *testing.T) *slackAPI {
	s := &slackAPI{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Header.Get("Authorization") != "Bearer "+slackTestToken && r.Form.Get("token") != slackTestToken {
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		method := strings.TrimPrefix(r.URL.Path, "/api/")
		s.mu.Lock()
		c := slackCall{method: method, channel: r.Form.Get("channel"), ts: r.Form.Get("ts"), threadTS: r.Form.Get("thread_ts"), text: r.Form.Get("text"), at: time.Now()}
		if method == "chat.postMessage" {
			s.ts++
			c.ts = fmt.Sprintf("1700000000.%06d", s.ts)
		}
		s.calls = append(s.calls, c)
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": c.channel, "ts": c.ts})
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *slackAPI) snapshot() []slackCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]slackCall(nil), s.calls...)
}

const slackTestToken = "xoxb-test-0000-s3cr3tT0k3n"

// lateChannel is a channel built after the dispatcher (the Slack channel
// needs the dispatcher's thread bucket).
type lateChannel struct{ ch channels.Channel }

func (l *lateChannel) Send(ctx context.Context, ep channels.Endpoint, m *channels.Message) (channels.Receipt, error) {
	return l.ch.Send(ctx, ep, m)
}

// TestSlackThreadsAcrossUpdates: the updates of a corpus incident reach a
// partner's Slack channel as one parent message, one thread reply per later
// update, and one in-place edit of the parent per later update.
func TestSlackThreadsAcrossUpdates(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t)
	late := &lateChannel{}
	b := setup(t, bundleOpts{channels: map[string]channels.Channel{channels.Slack: late}})
	ch, err := slack.New(slack.Config{
		BotToken: secret.Value(slackTestToken), APIURL: api.srv.URL + "/api/",
		Threads: slack.NewKVThreads(b.d.topo.SlackThreads), PerChannelInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	late.ch = ch
	b.putSubscriber(&subscribers.Subscriber{ID: "p1", Locale: "en-GB", Endpoints: []subscribers.Endpoint{
		{ID: "slack", Channel: channels.Slack, SlackChannel: "C0123ABCD"},
	}})

	updates := corpusIncident(t, "TSR-1572")
	if len(updates) < 3 {
		t.Fatalf("corpus incident has %d updates", len(updates))
	}
	for i, u := range updates {
		b.publish(u)
		// Each update is delivered before the next is published, as a
		// status page publishes them minutes apart.
		b.waitFor(fmt.Sprintf("update %d posted", i+1), 10*time.Second, func() bool {
			return countMethod(api.snapshot(), "chat.postMessage") == i+1
		})
	}
	n := len(updates)
	b.waitFor("parent edits", 10*time.Second, func() bool { return countMethod(api.snapshot(), "chat.update") == n-1 })
	calls := api.snapshot()
	parent := calls[0]
	if parent.method != "chat.postMessage" || parent.threadTS != "" {
		t.Fatalf("first call %+v, want the parent message", parent)
	}
	replies := 0
	for _, c := range calls[1:] {
		switch c.method {
		case "chat.postMessage":
			if c.threadTS != parent.ts {
				t.Errorf("reply %+v not threaded under the parent %s", c, parent.ts)
			}
			replies++
		case "chat.update":
			if c.ts != parent.ts {
				t.Errorf("edit %+v not of the parent %s", c, parent.ts)
			}
		default:
			t.Errorf("unexpected call %+v", c)
		}
	}
	if replies != n-1 {
		t.Errorf("%d thread replies, want %d", replies, n-1)
	}
	for _, sub := range []string{"p1"} {
		for _, r := range b.records(sub) {
			if r.Outcome != Delivered {
				t.Errorf("record %+v", r)
			}
		}
	}
	for _, c := range calls {
		if strings.Contains(c.text, slackTestToken) {
			t.Error("the bot token reached a message")
		}
	}
}

func countMethod(calls []slackCall, method string) int {
	n := 0
	for _, c := range calls {
		if c.method == method {
			n++
		}
	}
	return n
}

// corpusIncident returns the updates of one incident of the shared corpus,
// in order.
func corpusIncident(t *testing.T, incidentID string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "examples", "incidents.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, `"incident_id": "`+incidentID+`"`) || strings.Contains(line, `"incident_id":"`+incidentID+`"`) {
			out = append(out, line)
		}
	}
	return out
}

// TestBusySlackChannelDoesNotDelayOthers: a Slack channel that receives
// several messages at once takes them one per pace (Slack's one message per
// second per channel), and its jobs wait for their turn without holding a
// send slot: with a single slot, another partner's channel still gets its
// message before the busy channel's second one.
func TestBusySlackChannelDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	const pace = 2 * time.Second
	api := newSlackAPI(t)
	late := &lateChannel{}
	b := setup(t, bundleOpts{channels: map[string]channels.Channel{channels.Slack: late}, cfg: func(c *Config) {
		c.Channels = map[string]ChannelConfig{channels.Slack: {Concurrency: 1, Pace: pace}}
	}})
	ch, err := slack.New(slack.Config{
		BotToken: secret.Value(slackTestToken), APIURL: api.srv.URL + "/api/",
		Threads: slack.NewKVThreads(b.d.topo.SlackThreads), PerChannelInterval: pace,
	})
	if err != nil {
		t.Fatal(err)
	}
	late.ch = ch
	b.putSubscriber(&subscribers.Subscriber{ID: "busy", Locale: "en-GB", Endpoints: []subscribers.Endpoint{
		{ID: "slack", Channel: channels.Slack, SlackChannel: "C0BUSY001"},
	}})
	for i := range 3 {
		b.publish(event(fmt.Sprintf("INC-B%d", i), 1, "investigating"))
	}
	posts := func(channel string) []int {
		var at []int
		for i, c := range api.snapshot() {
			if c.method == "chat.postMessage" && c.channel == channel {
				at = append(at, i)
			}
		}
		return at
	}
	b.waitFor("the busy channel's first message", 10*time.Second, func() bool { return len(posts("C0BUSY001")) >= 1 })
	b.putSubscriber(&subscribers.Subscriber{ID: "calm", Locale: "en-GB", Endpoints: []subscribers.Endpoint{
		{ID: "slack", Channel: channels.Slack, SlackChannel: "C0CALM001"},
	}})
	b.publish(event("INC-C", 1, "investigating"))
	b.waitFor("both channels", 20*time.Second, func() bool { return len(posts("C0CALM001")) == 1 && len(posts("C0BUSY001")) >= 2 })
	busy, calm := posts("C0BUSY001"), posts("C0CALM001")
	if calm[0] > busy[1] {
		t.Errorf("the calm channel's message (call %d) waited for the busy channel's second (call %d)", calm[0], busy[1])
	}
	b.waitFor("every busy message", 20*time.Second, func() bool { return len(posts("C0BUSY001")) == 4 })
	for _, r := range b.records("busy") {
		if r.Outcome != Delivered {
			t.Errorf("record %+v", r)
		}
	}
}
