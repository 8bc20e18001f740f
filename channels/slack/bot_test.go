package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
)

// TestThreadLifecycle delivers every update of a corpus incident, in order,
// to one channel: one parent, then per later update a thread reply and an
// edit of the parent, carrying exactly what package templates rendered.
func TestThreadLifecycle(t *testing.T) {
	t.Parallel()
	for _, replyFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReplyFirstUpdate=%v", replyFirst), func(t *testing.T) {
			t.Parallel()
			api := newSlackAPI(t)
			kv := newBucket(t)
			cfg := botConfig(api, NewKVThreads(kv))
			cfg.ReplyFirstUpdate = replyFirst
			ch := newChannel(t, cfg)
			ups := corpusIncident(t)
			for _, u := range ups {
				msg := u.message()
				r, err := ch.Send(t.Context(), channels.Endpoint{ID: "e3", Address: channelID}, msg)
				if err != nil {
					t.Fatalf("update %d: %v", u.Sequence, err)
				}
				if r.ProviderID == "" || r.Status != 200 || !strings.HasPrefix(r.Detail, "slack channel "+channelID) ||
					r.BodySHA256 != channels.HashBody(msg.Body) {
					t.Errorf("update %d: receipt %+v", u.Sequence, r)
				}
			}

			calls := api.Calls()
			// The expected conversation, in order.
			type step struct {
				method string
				thread bool // a reply in the parent's thread
				msg    []byte
			}
			want := []step{{"chat.postMessage", false, ups[0].Parent}}
			if replyFirst {
				want = append(want, step{"chat.postMessage", true, ups[0].Body})
			}
			for _, u := range ups[1:] {
				want = append(want, step{"chat.postMessage", true, u.Body}, step{"chat.update", false, u.Parent})
			}
			if len(calls) != len(want) {
				t.Fatalf("%d calls, want %d: %v", len(calls), len(want), methods(calls))
			}
			parentTS, _ := calls[0].Answer["ts"].(string)
			if parentTS == "" {
				t.Fatalf("no ts in the parent's answer %v", calls[0].Answer)
			}
			for i, w := range want {
				c := calls[i]
				if c.Method != w.method || c.Form.Get("channel") != channelID {
					t.Errorf("call %d: %s to %s, want %s to %s", i, c.Method, c.Form.Get("channel"), w.method, channelID)
					continue
				}
				if !sent(t, c, w.msg) {
					t.Errorf("call %d (%s): text %q and blocks differ from the rendered message", i, c.Method, c.Form.Get("text"))
				}
				switch {
				case w.method == "chat.update" && c.Form.Get("ts") != parentTS:
					t.Errorf("call %d: chat.update of ts %q, want the parent %q", i, c.Form.Get("ts"), parentTS)
				case w.thread && c.Form.Get("thread_ts") != parentTS:
					t.Errorf("call %d: reply with thread_ts %q, want the parent %q", i, c.Form.Get("thread_ts"), parentTS)
				case !w.thread && c.Form.Has("thread_ts"):
					t.Errorf("call %d: %s in a thread", i, c.Method)
				}
				if c.Form.Get("token") != botToken {
					t.Errorf("call %d: not authenticated with the bot token", i)
				}
			}
			replies := api.count("chat.postMessage") - 1
			if wantReplies := len(ups) - 1; !replyFirst && replies != wantReplies {
				t.Errorf("%d replies, want %d", replies, wantReplies)
			}
			if n := api.count("chat.update"); n != len(ups)-1 {
				t.Errorf("%d parent updates, want %d", n, len(ups)-1)
			}

			// The record: the parent shows the last update, every
			// delivery is recorded, no lease is left.
			th, _, err := NewKVThreads(kv).Load(t.Context(), ThreadKey{IncidentID: ups[0].IncidentID, ChannelID: channelID})
			if err != nil {
				t.Fatal(err)
			}
			last := ups[len(ups)-1]
			if th.ParentTS != parentTS || th.Sequence != last.Sequence || th.Status != last.Status || !th.Closed || th.Lease != "" || len(th.Posted) != len(ups) {
				t.Errorf("record %+v", th)
			}
			if th.IncidentID != last.IncidentID || th.ChannelID != channelID {
				t.Errorf("record names %q in %q", th.IncidentID, th.ChannelID)
			}
		})
	}
}

func methods(calls []apiCall) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Method)
	}
	return out
}

// TestRedeliveryDoesNotPostAgain sends every update three times: once, again
// on the same Channel (a lost ack), and again from a fresh Channel over the
// same bucket (a crash and restart between the post and the ack). Slack
// must see exactly what one delivery of each produces.
func TestRedeliveryDoesNotPostAgain(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t)
	kv := newBucket(t)
	ep := channels.Endpoint{Address: channelID}
	ups := corpusIncident(t)
	first := newChannel(t, botConfig(api, NewKVThreads(kv)))
	var receipts []channels.Receipt
	for _, u := range ups {
		r, err := first.Send(t.Context(), ep, u.message())
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, r)
		msg := u.message()
		msg.Attempt = 2
		again, err := first.Send(t.Context(), ep, msg)
		if err != nil {
			t.Fatal(err)
		}
		if again.ProviderID != r.ProviderID || !strings.Contains(again.Detail, "already posted") {
			t.Errorf("update %d redelivered: receipt %+v, first %+v", u.Sequence, again, r)
		}
		restarted := newChannel(t, botConfig(api, NewKVThreads(kv)))
		msg.Attempt = 3
		if r3, err := restarted.Send(t.Context(), ep, msg); err != nil || r3.ProviderID != r.ProviderID {
			t.Errorf("update %d after a restart: %+v, %v", u.Sequence, r3, err)
		}
	}
	// Old deliveries redelivered once the thread moved on.
	for _, u := range ups {
		if _, err := newChannel(t, botConfig(api, NewKVThreads(kv))).Send(t.Context(), ep, u.message()); err != nil {
			t.Fatal(err)
		}
	}
	if p, u := api.count("chat.postMessage"), api.count("chat.update"); p != len(ups) || u != len(ups)-1 {
		t.Errorf("%d posts and %d updates for %d updates delivered several times, want %d and %d", p, u, len(ups), len(ups), len(ups)-1)
	}
}

// TestOutOfOrder delivers an older update after a newer one: it goes in the
// thread, and the parent keeps showing the newer.
func TestOutOfOrder(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t)
	threads := NewKVThreads(newBucket(t))
	ch := newChannel(t, botConfig(api, threads))
	ups := corpusIncident(t)
	ep := channels.Endpoint{Address: channelID}
	for _, i := range []int{0, 3, 1, 2} {
		if _, err := ch.Send(t.Context(), ep, ups[i].message()); err != nil {
			t.Fatal(err)
		}
	}
	calls := api.Calls()
	if got := methods(calls); strings.Join(got, " ") != "chat.postMessage chat.postMessage chat.update chat.postMessage chat.postMessage" {
		t.Fatalf("calls %v", got)
	}
	if !sent(t, calls[2], ups[3].Parent) {
		t.Error("the parent was not updated to the newest update")
	}
	for i, u := range []update{ups[1], ups[2]} {
		if c := calls[3+i]; !sent(t, c, u.Body) || c.Form.Get("thread_ts") == "" {
			t.Errorf("late update %d not posted in the thread", u.Sequence)
		}
	}
	th, _, err := threads.Load(t.Context(), ThreadKey{IncidentID: ups[0].IncidentID, ChannelID: channelID})
	if err != nil {
		t.Fatal(err)
	}
	if th.Sequence != ups[3].Sequence || th.Status != ups[3].Status {
		t.Errorf("the parent is recorded at %d %s, want %d %s", th.Sequence, th.Status, ups[3].Sequence, ups[3].Status)
	}
}

// TestConcurrentDeliveries runs two Herald processes (two Channels over one
// bucket) delivering every update of an incident at once, each delivery
// twice (a redelivery racing the original): one parent, one reply per
// other delivery, and parent edits that never go back in time.
func TestConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t)
	kv := newBucket(t)
	procs := []*Channel{
		newChannel(t, botConfig(api, NewKVThreads(kv))),
		newChannel(t, botConfig(api, NewKVThreads(kv))),
	}
	ups := corpusIncident(t)
	ep := channels.Endpoint{Address: channelID}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(ups))
	for _, u := range ups {
		for p, ch := range procs {
			wg.Go(func() {
				for attempt := p + 1; ; attempt += len(procs) {
					msg := u.message()
					msg.Attempt = attempt
					_, err := ch.Send(t.Context(), ep, msg)
					if err == nil {
						return
					}
					if c := channels.Classify(err); c.Permanent || attempt > 2000 {
						errs <- fmt.Errorf("update %d: %w", u.Sequence, err)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// shows returns the sequences whose rendered parent c carries
	// (consecutive updates may render the same parent).
	shows := func(c apiCall) []int64 {
		var out []int64
		for _, u := range ups {
			if sent(t, c, u.Parent) {
				out = append(out, u.Sequence)
			}
		}
		if len(out) == 0 {
			t.Fatalf("%s carries no rendered parent", c.Method)
		}
		return out
	}
	// Messages deleted again (a send that lost its lease) do not count.
	deleted := map[string]bool{}
	for _, c := range api.Calls() {
		if c.Method == "chat.delete" {
			deleted[c.Form.Get("ts")] = true
		}
	}
	var parents, replies int
	shown := int64(0)
	for _, c := range api.Calls() {
		ts, _ := c.Answer["ts"].(string)
		switch {
		case c.Method == "chat.postMessage" && deleted[ts]:
		case c.Method == "chat.postMessage" && !c.Form.Has("thread_ts"):
			parents++
			shown = shows(c)[0]
		case c.Method == "chat.postMessage":
			replies++
		case c.Method == "chat.update":
			i := slices.IndexFunc(shows(c), func(s int64) bool { return s > shown })
			if i < 0 {
				t.Errorf("the parent went back from update %d to %v", shown, shows(c))
				continue
			}
			shown = shows(c)[i]
		}
	}
	if parents != 1 || replies != len(ups)-1 {
		t.Errorf("%d parents and %d replies, want 1 and %d", parents, replies, len(ups)-1)
	}
	if last := ups[len(ups)-1].Sequence; shown != last {
		t.Errorf("the parent shows update %d, want %d", shown, last)
	}
}

// TestBotErrors checks how each Web API answer is classified, that no
// error holds the token, and that a failed send leaves no lease behind.
func TestBotErrors(t *testing.T) {
	t.Parallel()
	permanent := channels.Classification{Permanent: true}
	disable := channels.Classification{Permanent: true, Action: channels.DisableEndpoint}
	slackErr := func(code string) string { return `{"ok":false,"error":"` + code + `"}` }
	for _, tc := range []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		want     channels.Classification
		code     string
		tokenErr bool
	}{
		{"channel_not_found", 200, nil, slackErr("channel_not_found"), disable, "channel_not_found", false},
		{"not_in_channel", 200, nil, slackErr("not_in_channel"), disable, "not_in_channel", false},
		{"is_archived", 200, nil, slackErr("is_archived"), disable, "is_archived", false},
		{"invalid_auth", 200, nil, slackErr("invalid_auth"), disable, "invalid_auth", true},
		{"account_inactive", 200, nil, slackErr("account_inactive"), disable, "account_inactive", true},
		{"token_revoked", 200, nil, slackErr("token_revoked"), disable, "token_revoked", true},
		{"token_expired", 200, nil, slackErr("token_expired"), disable, "token_expired", true},
		{"ratelimited with 200", 200, map[string]string{"Retry-After": "7"}, slackErr("ratelimited"), channels.Classification{After: 7 * time.Second}, "ratelimited", false},
		{"429 with Retry-After", 429, map[string]string{"Retry-After": "30"}, slackErr("ratelimited"), channels.Classification{After: 30 * time.Second}, "ratelimited", false},
		{"429 with a fractional Retry-After", 429, map[string]string{"Retry-After": "1.5"}, "", channels.Classification{After: 1500 * time.Millisecond}, "", false},
		{"429 without Retry-After", 429, nil, "", channels.Classification{}, "", false},
		{"internal_error", 200, nil, slackErr("internal_error"), channels.Classification{}, "internal_error", false},
		{"500", 500, nil, "<html>oops</html>", channels.Classification{}, "", false},
		{"503 with Retry-After", 503, map[string]string{"Retry-After": "12"}, "", channels.Classification{After: 12 * time.Second}, "", false},
		{"404 is not the endpoint's fault", 404, nil, "not found", permanent, "", false},
		{"msg_too_long", 200, nil, slackErr("msg_too_long"), permanent, "msg_too_long", false},
		{"unknown code", 200, nil, slackErr("invalid_arguments"), permanent, "invalid_arguments", false},
		{"not JSON", 200, nil, "<html>proxy</html>", channels.Classification{}, "", false},
		{"echoed token", 400, nil, "bad token " + botToken, permanent, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := newSlackAPI(t, override("chat.postMessage", answer(tc.status, tc.header, tc.body)))
			threads := NewMemoryThreads()
			var logs channelstest.SyncBuffer
			cfg := botConfig(api, threads)
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			ch := newChannel(t, cfg)
			u := corpusIncident(t)[0]
			_, err := ch.Send(t.Context(), channels.Endpoint{Address: channelID}, u.message())
			if err == nil {
				t.Fatal("delivered")
			}
			t.Log(err)
			got := channels.Classify(err)
			if got.Permanent != tc.want.Permanent || got.Action != tc.want.Action || got.After < tc.want.After || (tc.want.After > 0 && got.After != tc.want.After) {
				t.Errorf("classification %+v, want %+v (%v)", got, tc.want, err)
			}
			var pe *channels.ProviderError
			if tc.code != "" && (!errors.As(err, &pe) || pe.Code != tc.code) {
				t.Errorf("err = %v, want a ProviderError with code %s", err, tc.code)
			}
			if errors.Is(err, ErrBotToken) != tc.tokenErr {
				t.Errorf("errors.Is(err, ErrBotToken) = %v (%v)", !tc.tokenErr, err)
			}
			if strings.Contains(fmt.Sprintf("%v %+v", err, err), botToken) || strings.Contains(err.Error(), "s3cr3tB0t") {
				t.Errorf("the error holds the token: %v", err)
			}
			if strings.Contains(logs.String(), "s3cr3tB0t") || !strings.Contains(logs.String(), "slack message refused") {
				t.Errorf("logs hold the token or lack the refusal: %s", logs.String())
			}
			if n := api.count("chat.postMessage"); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
			th, _, _ := threads.Load(t.Context(), ThreadKey{IncidentID: u.IncidentID, ChannelID: channelID})
			if th.Lease != "" || th.ParentTS != "" {
				t.Errorf("record after the failure: %+v", th)
			}
		})
	}
}

// TestBotTimeout checks that a Web API call that never answers gives up
// with the context, retryably.
func TestBotTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	api := newSlackAPI(t, override("chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) })
	ch := newChannel(t, botConfig(api, NewMemoryThreads()))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := ch.Send(ctx, channels.Endpoint{Address: channelID}, corpusIncident(t)[0].message())
	if err == nil || channels.Classify(err).Permanent {
		t.Fatalf("err = %v, want retryable", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's deadline", err)
	}
}

func TestBotModeUnavailable(t *testing.T) {
	t.Parallel()
	ch := newChannel(t, Config{})
	_, err := ch.Send(t.Context(), channels.Endpoint{Address: channelID}, corpusIncident(t)[0].message())
	c := channels.Classify(err)
	if !errors.Is(err, ErrBotModeUnavailable) || !c.Permanent || c.Action != channels.NoAction {
		t.Errorf("err = %v (%+v), want ErrBotModeUnavailable, permanent, the endpoint kept", err, c)
	}
}

func TestInvalidMessages(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t)
	ch := newChannel(t, botConfig(api, NewMemoryThreads()))
	u := corpusIncident(t)[0]
	noParent := u.message()
	noParent.Parent = nil
	badBody := u.message()
	badBody.Body = []byte(`{"blocks":[{"type":"section"}]}`)
	noID := u.message()
	noID.ID = ""
	for name, msg := range map[string]*channels.Message{"nil": nil, "no id": noID, "no parent": noParent, "bad body": badBody} {
		_, err := ch.Send(t.Context(), channels.Endpoint{Address: channelID}, msg)
		if c := channels.Classify(err); err == nil || !c.Permanent || c.Action != channels.NoAction {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
	}
	for _, addr := range []string{"", "general", "#alerts", "c0123abcd", "hooks.slack.com/services/T/B/x"} {
		_, err := ch.Send(t.Context(), channels.Endpoint{Address: addr}, u.message())
		if !errors.Is(err, ErrInvalidAddress) || !channels.Classify(err).Permanent {
			t.Errorf("address %q: err = %v, want ErrInvalidAddress", addr, err)
		}
	}
	if n := len(api.Calls()); n != 0 {
		t.Errorf("%d calls reached Slack", n)
	}
}

// failingStore is the real KV store with a fault: its Store fails once
// armed, as a JetStream outage would.
type failingStore struct {
	ThreadStore
	mu   sync.Mutex
	fail int // Store calls to let through before failing; -1: never fail
}

func (s *failingStore) Store(ctx context.Context, key ThreadKey, t Thread, rev uint64) (uint64, error) {
	s.mu.Lock()
	fail := s.fail == 0
	if s.fail > 0 {
		s.fail--
	}
	s.mu.Unlock()
	if fail {
		return 0, errors.New("nats: timeout")
	}
	return s.ThreadStore.Store(ctx, key, t, rev)
}

// TestUnrecordedPostIsDeleted: when the store fails right after Slack
// accepted the parent, the parent is deleted again, the error is
// retryable, and the retry leaves exactly one parent in the channel.
func TestUnrecordedPostIsDeleted(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t)
	store := &failingStore{ThreadStore: NewKVThreads(newBucket(t)), fail: 1} // the lease passes, the record fails
	clock := newFakeClock()
	cfg := botConfig(api, store)
	cfg.Now = clock.Now
	ch := newChannel(t, cfg)
	u := corpusIncident(t)[0]
	ep := channels.Endpoint{Address: channelID}
	_, err := ch.Send(t.Context(), ep, u.message())
	if err == nil || channels.Classify(err).Permanent {
		t.Fatalf("err = %v, want retryable", err)
	}
	calls := api.Calls()
	if len(calls) != 2 || calls[0].Method != "chat.postMessage" || calls[1].Method != "chat.delete" ||
		calls[1].Form.Get("ts") != calls[0].Answer["ts"] || calls[1].Form.Get("channel") != channelID {
		t.Fatalf("calls %v, want the parent posted then deleted", methods(calls))
	}
	// The store is back; the lease the failed send could not give back
	// expires.
	store.mu.Lock()
	store.fail = -1
	store.mu.Unlock()
	msg := u.message()
	msg.Attempt = 2
	if _, err := ch.Send(t.Context(), ep, msg); !errors.Is(err, ErrThreadBusy) {
		t.Fatalf("retry while the lease holds: %v, want ErrThreadBusy", err)
	}
	clock.Add(ch.cfg.ThreadLease)
	msg.Attempt = 3
	if _, err := ch.Send(t.Context(), ep, msg); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if p, d := api.count("chat.postMessage"), api.count("chat.delete"); p-d != 1 {
		t.Errorf("%d posted, %d deleted: %d parents left, want 1", p, d, p-d)
	}
}

// TestParentGone: when the parent was deleted in Slack, the update still
// counts (its reply is in the thread) and the next update starts a new
// parent.
func TestParentGone(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t, override("chat.update", answer(200, nil, `{"ok":false,"error":"message_not_found"}`)))
	threads := NewMemoryThreads()
	ch := newChannel(t, botConfig(api, threads))
	ups := corpusIncident(t)
	ep := channels.Endpoint{Address: channelID}
	for _, u := range ups[:3] {
		if _, err := ch.Send(t.Context(), ep, u.message()); err != nil {
			t.Fatalf("update %d: %v", u.Sequence, err)
		}
	}
	got := strings.Join(methods(api.Calls()), " ")
	if want := "chat.postMessage chat.postMessage chat.update chat.postMessage"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	if c := api.Calls()[3]; c.Form.Has("thread_ts") || !sent(t, c, ups[2].Parent) {
		t.Error("the third update did not start a new parent")
	}
}

// TestThreadLease: a thread held by another process is busy (retryable)
// until its lease expires, then taken over.
func TestThreadLease(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t)
	threads := NewKVThreads(newBucket(t))
	clock := newFakeClock()
	cfg := botConfig(api, threads)
	cfg.Now = clock.Now
	ch := newChannel(t, cfg)
	u := corpusIncident(t)[0]
	key := ThreadKey{IncidentID: u.IncidentID, ChannelID: channelID}
	if _, err := threads.Store(t.Context(), key, Thread{Lease: "other-process", LeaseUntil: clock.Now().Add(DefaultThreadLease)}, 0); err != nil {
		t.Fatal(err)
	}
	_, err := ch.Send(t.Context(), channels.Endpoint{Address: channelID}, u.message())
	if c := channels.Classify(err); !errors.Is(err, ErrThreadBusy) || c.Permanent || c.After <= 0 {
		t.Fatalf("err = %v (%+v), want ErrThreadBusy, retryable after a delay", err, c)
	}
	if n := len(api.Calls()); n != 0 {
		t.Fatalf("%d calls while the thread was busy", n)
	}
	clock.Add(DefaultThreadLease + time.Second)
	if _, err := ch.Send(t.Context(), channels.Endpoint{Address: channelID}, u.message()); err != nil {
		t.Fatalf("after the lease expired: %v", err)
	}
	if n := api.count("chat.postMessage"); n != 1 {
		t.Errorf("%d posts, want 1", n)
	}
}

// TestStandaloneMessage: a message of no incident (a service message) is
// one post, not threaded, and not posted again on redelivery.
func TestStandaloneMessage(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t)
	ch := newChannel(t, botConfig(api, NewKVThreads(newBucket(t))))
	msg := &channels.Message{ID: "dlv_notice_1", Kind: "endpoint.disabled", Body: []byte(`{"text":"Endpoint e4 disabled"}`)}
	for range 2 {
		if _, err := ch.Send(t.Context(), channels.Endpoint{Address: channelID}, msg); err != nil {
			t.Fatal(err)
		}
	}
	calls := api.Calls()
	if len(calls) != 1 || calls[0].Form.Get("text") != "Endpoint e4 disabled" || calls[0].Form.Has("thread_ts") {
		t.Errorf("calls %+v", calls)
	}
}

// TestBotRateLimit: the second message to a channel within the interval
// waits, or, beyond MaxRateWait, is handed back with the delay; other
// channels are not held up.
func TestBotRateLimit(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t)
	clock := newFakeClock()
	cfg := botConfig(api, NewMemoryThreads())
	cfg.PerChannelInterval = time.Hour
	cfg.Now = clock.Now
	ch := newChannel(t, cfg)
	ups := corpusIncident(t)
	if _, err := ch.Send(t.Context(), channels.Endpoint{Address: channelID}, ups[0].message()); err != nil {
		t.Fatal(err)
	}
	_, err := ch.Send(t.Context(), channels.Endpoint{Address: channelID}, ups[1].message())
	if c := channels.Classify(err); !errors.Is(err, ErrRateLimited) || c.Permanent || c.After < 59*time.Minute || c.After > time.Hour {
		t.Fatalf("err = %v (%+v), want ErrRateLimited after 1h", err, c)
	}
	if _, err := ch.Send(t.Context(), channels.Endpoint{Address: "C0OTHERCHAN"}, ups[1].message()); err != nil {
		t.Errorf("another channel: %v", err)
	}
	clock.Add(time.Hour)
	if _, err := ch.Send(t.Context(), channels.Endpoint{Address: channelID}, ups[1].message()); err != nil {
		t.Errorf("an hour later: %v", err)
	}
	if p := api.count("chat.postMessage"); p != 3 {
		t.Errorf("%d posts, want 3", p)
	}
}

// TestTextFallback: a message rendered without Slack JSON is posted as its
// plain text.
func TestTextFallback(t *testing.T) {
	t.Parallel()
	rcv := newHookReceiver(t)
	ch := newChannel(t, webhookConfig(t))
	msg := &channels.Message{ID: "dlv_1", Text: "Incident TSR-1610 & <co>"}
	if _, err := ch.Send(t.Context(), channels.Endpoint{Address: hookURL(rcv.URL)}, msg); err != nil {
		t.Fatal(err)
	}
	if reqs := rcv.requests(); len(reqs) != 1 || string(reqs[0].body) != `{"text":"Incident TSR-1610 \u0026 \u003cco\u003e"}` {
		t.Errorf("posted %q", reqs)
	}
	if msg.Body != nil {
		t.Error("Send changed the caller's message")
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"negative timeout":      {Timeout: -time.Second},
		"negative wait":         {MaxRateWait: -1},
		"short lease":           {ThreadLease: time.Second},
		"negative read limit":   {MaxResponseBytes: -1},
		"token without threads": {BotToken: "xoxb-1"},
		"token with spaces":     {BotToken: "xoxb-1 2", Threads: NewMemoryThreads()},
		"bad API URL":           {APIURL: "ftp://slack.com/api/"},
		"API URL with password": {APIURL: "https://u:p@slack.com/api/"},
		"bad webhook host":      {WebhookHosts: []string{"hooks.slack.com/x"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "xoxb-1") {
			t.Errorf("%s: the error quotes the token: %v", name, err)
		}
	}
	ch := newChannel(t, Config{Timeout: time.Minute})
	if c := ch.cfg; c.APIURL != DefaultAPIURL || c.PerChannelInterval != time.Second || c.MaxRateWait != 5*time.Second ||
		c.ThreadLease != 2*(5*time.Second+2*time.Minute) || len(c.WebhookHosts) != 2 || c.AllowHTTP || ch.api != nil {
		t.Errorf("defaults = %+v", c)
	}
}

// TestEditClearsBlocks: a parent rendered without blocks replaces the old
// blocks instead of leaving them.
func TestEditClearsBlocks(t *testing.T) {
	t.Parallel()
	api := newSlackAPI(t)
	ch := newChannel(t, botConfig(api, NewMemoryThreads()))
	ups := corpusIncident(t)
	second := ups[1].message()
	second.Parent = []byte(`{"text":"TSR: resolved"}`)
	for _, msg := range []*channels.Message{ups[0].message(), second} {
		if _, err := ch.Send(t.Context(), channels.Endpoint{Address: channelID}, msg); err != nil {
			t.Fatal(err)
		}
	}
	calls := api.Calls()
	if last := calls[len(calls)-1]; last.Method != "chat.update" || last.Form.Get("blocks") != "[]" || last.Form.Get("text") != "TSR: resolved" {
		t.Errorf("edit %s %v", last.Method, last.Form)
	}
}
