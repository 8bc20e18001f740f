package email

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/internal/dkimtest"
	"github.com/heraldhq/herald/secret"
)

const (
	testUser     = "herald@herald.example"
	testPassword = "pw_Sm7pS3cr3t-9d2f"
)

// clock is a settable clock for the channel.
type clock struct{ now atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.now.Store(testDate.UnixNano())
	return c
}

func (c *clock) Now() time.Time         { return time.Unix(0, c.now.Load()) }
func (c *clock) Add(d time.Duration)    { c.now.Add(int64(d)) }
func (c *clock) Func() func() time.Time { return c.Now }

// plainConfig is a channel configuration for ts without TLS nor AUTH.
func plainConfig(ts *testServer) Config {
	return Config{
		Host:        ts.host,
		Port:        ts.port,
		TLS:         TLSNone,
		From:        "Herald Status <status@herald.example>",
		ListID:      "status.herald.example",
		FeedbackID:  "herald",
		DialTimeout: 30 * time.Second,
		SendTimeout: 30 * time.Second,
	}
}

func newChannel(t testing.TB, cfg Config) *Channel {
	t.Helper()
	ch, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

func to(addr string) channels.Endpoint {
	return channels.Endpoint{SubscriberID: "m_1042", ID: "e1", Address: addr, Name: "Boulangerie Dupont"}
}

func TestSendDelivers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	ch := newChannel(t, plainConfig(ts))
	r, err := ch.Send(t.Context(), dupont(), frenchMessage())
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 250 || r.ProviderID != "Q1" || r.Detail != "250 2.0.0 Ok: queued as Q1" || r.Outbox {
		t.Errorf("receipt %+v", r)
	}
	got := ts.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	if got[0].from != "status@herald.example" || got[0].to != "ops@dupont.example" {
		t.Errorf("envelope %s -> %s", got[0].from, got[0].to)
	}
	for _, want := range []string{
		"Message-ID: <dlv_5c1f0e9a7b3d4e21@herald.example>\r\n",
		"Auto-Submitted: auto-generated\r\n",
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
		"List-Id: <status.herald.example>\r\n",
		"Content-Type: multipart/alternative;",
	} {
		if !bytes.Contains(got[0].data, []byte(want)) {
			t.Errorf("the message lacks %q", want)
		}
	}
}

// TestOutcomes sends, through one channel with one connection, to
// recipients the server answers with chosen replies, and checks each
// outcome; the connection must survive every refusal that does not break
// it, and the next message must go through.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	const (
		retry     = "retry"
		permanent = "permanent"
		suppress  = "suppress"
		delivered = "delivered"
	)
	ec := func(a, b, c int) smtp.EnhancedCode { return smtp.EnhancedCode{a, b, c} }
	none := smtp.NoEnhancedCode
	for _, tc := range []struct {
		name   string
		b      behavior
		want   string
		status int
		code   string
	}{
		{"250", behavior{}, delivered, 250, ""},
		{"251 to the content", behavior{stage: stageEnd, code: 251, enhanced: ec(2, 1, 5), text: "Ok: queued as Z9"}, delivered, 251, ""},
		{"421 at RCPT", behavior{stage: stageRcpt, code: 421, enhanced: ec(4, 7, 0), text: "Too many connections, closing"}, retry, 421, "4.7.0"},
		{"450 at RCPT", behavior{stage: stageRcpt, code: 450, enhanced: ec(4, 2, 1), text: "Mailbox busy"}, retry, 450, "4.2.1"},
		{"451 4.7.1 greylisted", behavior{stage: stageRcpt, code: 451, enhanced: ec(4, 7, 1), text: "Greylisted, try again in 5 minutes"}, retry, 451, "4.7.1"},
		{"451 at end of data", behavior{stage: stageEnd, code: 451, enhanced: ec(4, 3, 0), text: "Temporary local problem"}, retry, 451, "4.3.0"},
		{"452 4.2.2 mailbox full", behavior{stage: stageRcpt, code: 452, enhanced: ec(4, 2, 2), text: "Mailbox full"}, retry, 452, "4.2.2"},
		{"550 5.1.1 user unknown", behavior{stage: stageRcpt, code: 550, enhanced: ec(5, 1, 1), text: "<x@dupont.example>: Recipient address rejected: User unknown"}, suppress, 550, "5.1.1"},
		{"550 5.1.2 no such domain", behavior{stage: stageRcpt, code: 550, enhanced: ec(5, 1, 2), text: "Domain not found"}, suppress, 550, "5.1.2"},
		{"550 5.1.10 null MX", behavior{stage: stageRcpt, code: 550, enhanced: ec(5, 1, 10), text: "Recipient address has null MX"}, suppress, 550, "5.1.10"},
		{"550 5.1.1 at end of data", behavior{stage: stageEnd, code: 550, enhanced: ec(5, 1, 1), text: "User unknown"}, suppress, 550, "5.1.1"},
		{"550 5.1.0 sender rejected at RCPT", behavior{stage: stageRcpt, code: 550, enhanced: ec(5, 1, 0), text: "<status@herald.example>: Sender address rejected"}, permanent, 550, "5.1.0"},
		{"550 5.7.1 policy", behavior{stage: stageRcpt, code: 550, enhanced: ec(5, 7, 1), text: "Message rejected due to local policy"}, permanent, 550, "5.7.1"},
		{"550 without enhanced code", behavior{stage: stageRcpt, code: 550, enhanced: none, text: "No such user here"}, permanent, 550, ""},
		{"552 5.2.2 mailbox full", behavior{stage: stageRcpt, code: 552, enhanced: ec(5, 2, 2), text: "Mailbox full"}, retry, 552, "5.2.2"},
		{"552 bare at RCPT", behavior{stage: stageRcpt, code: 552, enhanced: none, text: "Requested mail action aborted"}, retry, 552, ""},
		{"552 5.3.4 too big at end of data", behavior{stage: stageEnd, code: 552, enhanced: ec(5, 3, 4), text: "Message size exceeds fixed limit"}, permanent, 552, "5.3.4"},
		{"554 5.7.1 spam", behavior{stage: stageEnd, code: 554, enhanced: ec(5, 7, 1), text: "Message rejected as spam"}, permanent, 554, "5.7.1"},
		{"554 transaction failed", behavior{stage: stageEnd, code: 554, enhanced: none, text: "Transaction failed"}, permanent, 554, ""},
		{"hang at RCPT", behavior{stage: stageRcpt, hang: true}, retry, 0, ""},
		{"hang at end of data", behavior{stage: stageEnd, hang: true}, retry, 0, ""},
		{"connection dropped at RCPT", behavior{stage: stageRcpt, drop: true}, retry, 0, ""},
		{"connection dropped at end of data", behavior{stage: stageEnd, drop: true}, retry, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, serverOptions{})
			cfg := plainConfig(ts)
			cfg.Pool = 1
			ch := newChannel(t, cfg)
			// Open the connection with a first message, so that the
			// case runs on a kept connection.
			if _, err := ch.Send(t.Context(), to("first@dupont.example"), frenchMessage()); err != nil {
				t.Fatal(err)
			}
			rcpt := "x@dupont.example"
			ts.set(rcpt, tc.b)
			ctx := t.Context()
			if tc.b.hang {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
			}
			r, err := ch.Send(ctx, to(rcpt), frenchMessage())
			c := channels.Classify(err)
			var got string
			switch {
			case err == nil:
				got = delivered
			case c.Permanent && c.Action == channels.SuppressAddress:
				got = suppress
			case c.Permanent && c.Action == channels.NoAction:
				got = permanent
			case !c.Permanent && c.After == 0:
				got = retry
			default:
				got = fmt.Sprintf("%+v", c)
			}
			if got != tc.want {
				t.Errorf("outcome %s, want %s (error: %v)", got, tc.want, err)
			}
			var pe *channels.ProviderError
			switch {
			case tc.want == delivered:
				if r.Status != tc.status || r.ProviderID == "" {
					t.Errorf("receipt %+v, want status %d and a queue id", r, tc.status)
				}
			case tc.status != 0:
				if !errors.As(err, &pe) || pe.Status != tc.status || pe.Code != tc.code {
					t.Errorf("provider error %+v, want status %d code %q (error: %v)", pe, tc.status, tc.code, err)
				} else if r.Status != tc.status {
					t.Errorf("receipt status %d, want %d", r.Status, tc.status)
				}
			default:
				if errors.As(err, &pe) {
					t.Errorf("a transport failure reported as a provider answer: %v", err)
				}
			}
			if err != nil && strings.ContainsFunc(err.Error(), isControl) {
				t.Errorf("error text holds a control character: %q", err)
			}
			// The hash of the content goes with every answer to it, and
			// only then: a refusal at RCPT sent none.
			if sent := tc.b.stage == stageEnd || tc.want == delivered; sent != (r.BodySHA256 != "") {
				t.Errorf("receipt's BodySHA256 %q; the content was sent: %v", r.BodySHA256, sent)
			}
			// The channel goes on: the next message is delivered.
			if _, err := ch.Send(t.Context(), to("next@dupont.example"), frenchMessage()); err != nil {
				t.Errorf("the send after the case failed: %v", err)
			}
			if n := ts.messages(); n[len(n)-1].to != "next@dupont.example" {
				t.Errorf("the last message went to %s", n[len(n)-1].to)
			}
			// A refusal keeps the connection; a broken exchange (421,
			// hang, drop) costs one redial.
			wantSessions := int64(1)
			if tc.status == 421 || tc.b.hang || tc.b.drop {
				wantSessions = 2
			}
			if s := ts.sessions.Load(); s != wantSessions {
				t.Errorf("%d connections, want %d", s, wantSessions)
			}
		})
	}
}

// TestMailFromRefused: a refused sender is permanent for the message and
// never suppresses the recipient.
func TestMailFromRefused(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	ts.set("status@herald.example", behavior{stage: stageMail, code: 553, enhanced: smtp.EnhancedCode{5, 1, 8}, text: "Sender domain not found"})
	ch := newChannel(t, plainConfig(ts))
	_, err := ch.Send(t.Context(), dupont(), frenchMessage())
	if c := channels.Classify(err); !c.Permanent || c.Action != channels.NoAction {
		t.Errorf("classification %+v (error %v), want permanent without action", c, err)
	}
	if !strings.Contains(fmt.Sprint(err), "MAIL FROM") {
		t.Errorf("error %q does not name the stage", err)
	}
}

// contractCases are the SMTP answers of the contract suite: every answer is
// the server's reply to RCPT TO.
func contractCases() []channelstest.Case {
	retry := channels.Classification{}
	permanent := channels.Classification{Permanent: true}
	suppress := channels.Classification{Permanent: true, Action: channels.SuppressAddress}
	echo := "5.7.1 Rejected: you said " + testPassword + " or " + base64.StdEncoding.EncodeToString([]byte("\x00"+testUser+"\x00"+testPassword))
	return []channelstest.Case{
		{Name: "250 delivered", Answer: channelstest.Answer{Status: 250}, Delivered: true},
		{Name: "421 retryable", Answer: channelstest.Answer{Status: 421, Body: "4.7.0 Try again later, closing connection"}, Want: retry},
		{Name: "450 retryable", Answer: channelstest.Answer{Status: 450, Body: "4.2.1 Mailbox busy"}, Want: retry},
		{Name: "451 4.7.1 retryable", Answer: channelstest.Answer{Status: 451, Body: "4.7.1 Greylisted"}, Want: retry},
		{Name: "452 retryable", Answer: channelstest.Answer{Status: 452, Body: "4.5.3 Too many recipients"}, Want: retry},
		{Name: "550 5.1.1 suppresses", Answer: channelstest.Answer{Status: 550, Body: "5.1.1 User unknown"}, Want: suppress},
		{Name: "553 5.1.3 suppresses", Answer: channelstest.Answer{Status: 553, Body: "5.1.3 Bad recipient address syntax"}, Want: suppress},
		{Name: "550 5.1.6 suppresses", Answer: channelstest.Answer{Status: 550, Body: "5.1.6 Mailbox has moved"}, Want: suppress},
		{Name: "550 5.1.8 permanent", Answer: channelstest.Answer{Status: 550, Body: "5.1.8 Sender domain unknown"}, Want: permanent},
		{Name: "550 5.7.1 permanent", Answer: channelstest.Answer{Status: 550, Body: "5.7.1 Blocked by policy"}, Want: permanent},
		{Name: "550 without enhanced code permanent", Answer: channelstest.Answer{Status: 550, Body: "No such user"}, Want: permanent},
		{Name: "552 5.2.2 retryable", Answer: channelstest.Answer{Status: 552, Body: "5.2.2 Mailbox full"}, Want: retry},
		{Name: "552 5.3.4 permanent", Answer: channelstest.Answer{Status: 552, Body: "5.3.4 Message too big"}, Want: permanent},
		{Name: "554 5.7.1 permanent", Answer: channelstest.Answer{Status: 554, Body: "5.7.1 Spam"}, Want: permanent},
		{Name: "554 permanent", Answer: channelstest.Answer{Status: 554}, Want: permanent},
		{Name: "550 with a huge text permanent", Answer: channelstest.Answer{Status: 550, Body: "5.7.1 " + strings.Repeat("blocked ", 20000)}, Want: permanent},
		{Name: "550 with control characters permanent", Answer: channelstest.Answer{Status: 550, Body: "5.7.1 line1\x1b[31mred\x00\tend\u202e"}, Want: permanent},
		{Name: "550 echoing the credentials permanent", Answer: channelstest.Answer{Status: 550, Body: echo}, Want: permanent},
		{Name: "connection refused retryable", Answer: channelstest.Answer{Fault: channelstest.Refuse}, Want: retry},
		{Name: "hanging server retryable after the deadline", Answer: channelstest.Answer{Fault: channelstest.Hang}, Want: retry},
	}
}

// behaviorFor turns a contract answer into the test server's reply.
func behaviorFor(a channelstest.Answer) *behavior {
	if a.Status >= 200 && a.Status < 300 {
		return nil
	}
	b := behavior{stage: stageRcpt, code: a.Status, enhanced: smtp.NoEnhancedCode, text: a.Body}
	if e, rest, ok := cutEnhanced(a.Body); ok {
		b.enhanced, b.text = smtp.EnhancedCode{e.Class, e.Subject, e.Detail}, rest
	}
	if b.text == "" {
		b.text = "Refused"
	}
	return &b
}

// hangingListener accepts connections and never says a word.
func hangingListener(t *testing.T) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	a := ln.Addr().(*net.TCPAddr)
	return "127.0.0.1", a.Port
}

// TestContract runs channelstest's suite against a server requiring
// STARTTLS and AUTH PLAIN: the password must never show.
func TestContract(t *testing.T) {
	t.Parallel()
	ca := testTLS(t)
	channelstest.Run(t, channelstest.Harness{
		New: func(t *testing.T, a channelstest.Answer, logger *slog.Logger) channelstest.Target {
			cfg := Config{
				Username:    testUser,
				Password:    secret.Value(testPassword),
				TLSConfig:   ca.clientConfig(),
				From:        "Herald Status <status@herald.example>",
				DialTimeout: 30 * time.Second,
				SendTimeout: 30 * time.Second,
				Logger:      logger,
			}
			var attempts func() int
			var content func() []byte
			switch a.Fault {
			case channelstest.Refuse:
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				cfg.Host, cfg.Port = "127.0.0.1", ln.Addr().(*net.TCPAddr).Port
				_ = ln.Close()
			case channelstest.Hang:
				cfg.Host, cfg.Port = hangingListener(t)
			default:
				ts := newTestServer(t, serverOptions{tls: ca.serverConfig(), user: testUser, pass: testPassword, mechs: []string{"PLAIN"}})
				if b := behaviorFor(a); b != nil {
					ts.setFallback(*b)
				}
				cfg.Host, cfg.Port = ts.host, ts.port
				attempts = func() int { return int(ts.mails.Load()) }
				content = func() []byte {
					if got := ts.messages(); len(got) > 0 {
						return got[len(got)-1].data
					}
					return nil
				}
			}
			return channelstest.Target{Channel: newChannel(t, cfg), Endpoint: dupont(), Attempts: attempts, Content: content}
		},
		Cases:   contractCases(),
		Secrets: []string{testPassword, base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00" + testPassword))},
		Message: frenchMessage,
	})
}

// TestAuth sends through every AUTH mechanism, over STARTTLS and implicit
// TLS, and checks the server saw the user authenticated.
func TestAuth(t *testing.T) {
	t.Parallel()
	ca := testTLS(t)
	for _, mode := range []TLSMode{TLSStartTLS, TLSImplicit} {
		for _, tc := range []struct {
			auth  AuthMethod
			mechs []string
		}{
			{AuthPlain, []string{"PLAIN"}},
			{AuthLogin, []string{"LOGIN"}},
			{AuthCRAMMD5, []string{"CRAM-MD5"}},
			{AuthAuto, []string{"LOGIN", "PLAIN"}},
			{AuthAuto, []string{"LOGIN"}},
			{AuthAuto, []string{"PLAIN", "LOGIN", "CRAM-MD5"}},
		} {
			t.Run(fmt.Sprintf("%s %s %s", mode, tc.auth, strings.Join(tc.mechs, "+")), func(t *testing.T) {
				t.Parallel()
				ts := newTestServer(t, serverOptions{tls: ca.serverConfig(), implicit: mode == TLSImplicit, user: testUser, pass: testPassword, mechs: tc.mechs})
				ch := newChannel(t, Config{
					Host: ts.host, Port: ts.port, TLS: mode, TLSConfig: ca.clientConfig(),
					Username: testUser, Password: testPassword, Auth: tc.auth,
					From: "status@herald.example",
				})
				for range 2 {
					if _, err := ch.Send(t.Context(), dupont(), frenchMessage()); err != nil {
						t.Fatal(err)
					}
				}
				got := ts.messages()
				if len(got) != 2 || got[0].user != testUser || got[1].user != testUser {
					t.Errorf("messages %+v, want 2 sent by %s", got, testUser)
				}
				if s := ts.sessions.Load(); s != 1 {
					t.Errorf("%d connections, want 1", s)
				}
			})
		}
	}
}

// TestAuthFailure: a wrong password is a connection failure, retryable
// (the operator fixes the configuration, the dispatcher retries), and
// neither the password nor the AUTH exchange shows.
func TestAuthFailure(t *testing.T) {
	t.Parallel()
	ca := testTLS(t)
	ts := newTestServer(t, serverOptions{tls: ca.serverConfig(), user: testUser, pass: "the-right-one", mechs: []string{"PLAIN"}})
	logs := &channelstest.SyncBuffer{}
	ch := newChannel(t, Config{
		Host: ts.host, Port: ts.port, TLSConfig: ca.clientConfig(),
		Username: testUser, Password: testPassword, From: "status@herald.example",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	_, err := ch.Send(t.Context(), dupont(), frenchMessage())
	if err == nil || channels.Classify(err).Permanent {
		t.Fatalf("error %v, want a retryable failure", err)
	}
	if !strings.Contains(err.Error(), "535") {
		t.Errorf("error %q does not carry the server's 535", err)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00" + testPassword))
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), logs.String()} {
		if strings.Contains(text, testPassword) || strings.Contains(text, plain) {
			t.Errorf("credentials leaked: %s", text)
		}
	}
	if !strings.Contains(logs.String(), "email server connection failed") {
		t.Errorf("no warning logged: %s", logs.String())
	}
	if ts.mails.Load() != 0 {
		t.Error("a transaction started without authentication")
	}
}

// TestSTARTTLSIsMandatory: a server that does not offer STARTTLS gets
// nothing, neither credentials nor mail.
func TestSTARTTLSIsMandatory(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{user: testUser, pass: testPassword, mechs: []string{"PLAIN"}})
	ch := newChannel(t, Config{Host: ts.host, Port: ts.port, Username: testUser, Password: testPassword, From: "status@herald.example"})
	_, err := ch.Send(t.Context(), dupont(), frenchMessage())
	if err == nil || channels.Classify(err).Permanent || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("error %v, want a retryable failure naming STARTTLS", err)
	}
	if ts.mails.Load() != 0 || len(ts.messages()) != 0 {
		t.Error("mail went out in clear text")
	}
}

// TestTLSVerifiesTheServer: a certificate the client does not trust stops
// the exchange before AUTH.
func TestTLSVerifiesTheServer(t *testing.T) {
	t.Parallel()
	ca := testTLS(t)
	ts := newTestServer(t, serverOptions{tls: ca.serverConfig(), user: testUser, pass: testPassword, mechs: []string{"PLAIN"}})
	ch := newChannel(t, Config{Host: ts.host, Port: ts.port, Username: testUser, Password: testPassword, From: "status@herald.example"})
	_, err := ch.Send(t.Context(), dupont(), frenchMessage())
	if err == nil || channels.Classify(err).Permanent || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error %v, want a retryable certificate failure", err)
	}
	if ts.mails.Load() != 0 {
		t.Error("a transaction started over an unverified connection")
	}
}

// TestPoolReuse sends many messages from many goroutines: they share Pool
// connections, never more, opened once each.
func TestPoolReuse(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	cfg := plainConfig(ts)
	cfg.Pool = 3
	ch := newChannel(t, cfg)
	const senders, each = 6, 20
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				msg := frenchMessage()
				msg.ID = fmt.Sprintf("dlv_%d_%d", g, i)
				if _, err := ch.Send(t.Context(), to(fmt.Sprintf("s%d@dupont.example", g)), msg); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(ts.messages()); n != senders*each {
		t.Errorf("%d messages delivered, want %d", n, senders*each)
	}
	if s := ts.sessions.Load(); s < 1 || s > int64(cfg.Pool) {
		t.Errorf("%d connections for %d messages, want 1 to %d", s, senders*each, cfg.Pool)
	}
	if m := ts.mails.Load(); m != senders*each {
		t.Errorf("%d transactions, want %d", m, senders*each)
	}
}

// TestPoolLifecycle drives one connection through its life with the
// channel's clock: reuse, a check after a pause, retirement after
// MaxPerConnection messages and after IdleTimeout, a redial when the
// server dropped it meanwhile.
func TestPoolLifecycle(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	clk := newClock()
	cfg := plainConfig(ts)
	cfg.Pool = 1
	cfg.MaxPerConnection = 3
	cfg.IdleTimeout = time.Hour // the janitor stays out of the way
	cfg.Now = clk.Func()
	ch := newChannel(t, cfg)
	send := func(step string) {
		t.Helper()
		if _, err := ch.Send(t.Context(), dupont(), frenchMessage()); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	expect := func(step string, sessions int64) {
		t.Helper()
		if s := ts.sessions.Load(); s != sessions {
			t.Fatalf("%s: %d connections, want %d", step, s, sessions)
		}
	}
	send("first")
	send("second")
	send("third")
	expect("three messages", 1)
	send("fourth")
	expect("past MaxPerConnection", 2)
	clk.Add(probeIdle)
	send("after a pause")
	expect("after a pause, checked with NOOP", 2)
	ts.killConnections()
	clk.Add(probeIdle)
	send("after the server dropped the connection")
	expect("after the server dropped the connection", 3)
	clk.Add(time.Hour)
	send("after IdleTimeout")
	expect("after IdleTimeout", 4)
	if n := len(ts.messages()); n != 7 {
		t.Errorf("%d messages delivered, want 7", n)
	}
}

// TestBoundedConcurrency: with every connection busy (the server holds
// them), another Send waits, and gives up when its context ends, without
// opening a connection of its own.
func TestBoundedConcurrency(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	ts.set("slow@dupont.example", behavior{stage: stageRcpt, hang: true})
	cfg := plainConfig(ts)
	cfg.Pool = 2
	ch := newChannel(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range cfg.Pool {
		wg.Go(func() { _, _ = ch.Send(ctx, to("slow@dupont.example"), frenchMessage()) })
	}
	// Wait until both hold their connection (liveness bound, not a
	// performance threshold).
	for deadline := time.Now().Add(10 * time.Second); ts.mails.Load() < int64(cfg.Pool); {
		if time.Now().After(deadline) {
			t.Fatal("the senders never reached the server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	short, cancelShort := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancelShort()
	_, err := ch.Send(short, dupont(), frenchMessage())
	if !errors.Is(err, context.DeadlineExceeded) || channels.Classify(err).Permanent {
		t.Errorf("error %v, want a retryable context deadline", err)
	}
	if s := ts.sessions.Load(); s != int64(cfg.Pool) {
		t.Errorf("%d connections, want %d", s, cfg.Pool)
	}
	cancel()
	wg.Wait()
}

// TestRateLimit: with a rate of one message per 1000 s and a burst of one,
// the second Send cannot go before its deadline and says so at once.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	cfg := plainConfig(ts)
	cfg.Rate, cfg.Burst = 0.001, 1
	ch := newChannel(t, cfg)
	if _, err := ch.Send(t.Context(), dupont(), frenchMessage()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := ch.Send(ctx, dupont(), frenchMessage())
	if err == nil || channels.Classify(err).Permanent || !strings.Contains(err.Error(), "rate limit") {
		t.Errorf("error %v, want a retryable rate-limit failure", err)
	}
	if m := ts.mails.Load(); m != 1 {
		t.Errorf("%d transactions, want 1", m)
	}
}

// TestRefusedMessages: messages and endpoints Herald cannot render fail
// permanently before any connection.
func TestRefusedMessages(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	ch := newChannel(t, plainConfig(ts))
	with := func(mod func(*channels.Message)) *channels.Message {
		m := frenchMessage()
		mod(m)
		return m
	}
	for _, tc := range []struct {
		name   string
		ep     channels.Endpoint
		msg    *channels.Message
		action channels.Action
		want   string
	}{
		{"nil message", dupont(), nil, channels.NoAction, "delivery id"},
		{"no delivery id", dupont(), with(func(m *channels.Message) { m.ID = "" }), channels.NoAction, "delivery id"},
		{"invalid address", to("not an address"), frenchMessage(), channels.DisableEndpoint, "not a valid email address"},
		{"empty address", to(""), frenchMessage(), channels.DisableEndpoint, "not a valid email address"},
		{"LF in a header value", dupont(), with(func(m *channels.Message) {
			m.Headers["List-Unsubscribe"] = "<https://herald.example/u/abc>\nBcc: victim@example.com"
		}), channels.NoAction, "control character"},
		{"CR in a header value", dupont(), with(func(m *channels.Message) { m.Headers["X-Note"] = "a\rb" }), channels.NoAction, "control character"},
		{"NUL in a header value", dupont(), with(func(m *channels.Message) { m.Headers["X-Note"] = "a\x00b" }), channels.NoAction, "control character"},
		{"CRLF in the subject", dupont(), with(func(m *channels.Message) { m.Subject = "Hello\r\nBcc: victim@example.com" }), channels.NoAction, "subject"},
		{"LF in the name", channels.Endpoint{Address: "ops@dupont.example", Name: "Dupont\nBcc: x@example.com"}, frenchMessage(), channels.NoAction, "name"},
		{"reserved header", dupont(), with(func(m *channels.Message) { m.Headers["bcc"] = "victim@example.com" }), channels.NoAction, "set by the email channel"},
		{"invalid header name", dupont(), with(func(m *channels.Message) { m.Headers["X Bad"] = "v" }), channels.NoAction, "invalid header name"},
		{"header set twice", dupont(), with(func(m *channels.Message) { m.Headers["list-unsubscribe"] = "<https://x>" }), channels.NoAction, "set twice"},
		{"header too long", dupont(), with(func(m *channels.Message) { m.Headers["X-Long"] = strings.Repeat("a", 999) }), channels.NoAction, "bytes long"},
		{"invalid Reply-To header", dupont(), with(func(m *channels.Message) { m.Headers["Reply-To"] = "nobody" }), channels.NoAction, "Reply-To"},
		{"no content", dupont(), with(func(m *channels.Message) { m.Text, m.HTML = "", "" }), channels.NoAction, "neither text nor HTML"},
	} {
		_, err := ch.Send(t.Context(), tc.ep, tc.msg)
		c := channels.Classify(err)
		if !c.Permanent || c.Action != tc.action || !strings.Contains(fmt.Sprint(err), tc.want) {
			t.Errorf("%s: error %v (%+v), want permanent, %s, mentioning %q", tc.name, err, c, tc.action, tc.want)
		}
	}
	if ts.sessions.Load() != 0 {
		t.Error("a refused message opened a connection")
	}
}

func TestSendAfterClose(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	ch := newChannel(t, plainConfig(ts))
	if _, err := ch.Send(t.Context(), dupont(), frenchMessage()); err != nil {
		t.Fatal(err)
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Send(t.Context(), dupont(), frenchMessage()); !errors.Is(err, errClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{Host: "smtp.herald.example", From: "status@herald.example"}
	if err := ok.WithDefaults().validate(); err != nil {
		t.Fatalf("minimal configuration refused: %v", err)
	}
	d := ok.WithDefaults()
	if d.TLS != TLSStartTLS || d.Port != 587 || d.Pool != 4 || d.Burst != 4 || d.Auth != "" {
		t.Errorf("defaults %+v", d)
	}
	if p := (Config{TLS: TLSImplicit}).WithDefaults().Port; p != 465 {
		t.Errorf("implicit TLS port %d", p)
	}
	if a := (Config{Username: "u"}).WithDefaults().Auth; a != AuthAuto {
		t.Errorf("auth %q with a username", a)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"no host", func(c *Config) { c.Host = "" }},
		{"host with a path", func(c *Config) { c.Host = "smtp.example/x" }},
		{"port out of range", func(c *Config) { c.Port = 70000 }},
		{"unknown TLS", func(c *Config) { c.TLS = "ssl" }},
		{"user without password", func(c *Config) { c.Username = "u" }},
		{"password without user", func(c *Config) { c.Password = "p" }},
		{"credentials in clear text", func(c *Config) { c.Username, c.Password, c.TLS = "u", "p", TLSNone }},
		{"auth without credentials", func(c *Config) { c.Auth = AuthPlain }},
		{"unknown auth", func(c *Config) { c.Username, c.Password, c.Auth = "u", "p", "xoauth" }},
		{"no from", func(c *Config) { c.From = "" }},
		{"invalid from", func(c *Config) { c.From = "status" }},
		{"invalid reply-to", func(c *Config) { c.ReplyTo = "support" }},
		{"negative pool", func(c *Config) { c.Pool = -1 }},
		{"negative rate", func(c *Config) { c.Rate = -1 }},
		{"negative timeout", func(c *Config) { c.SendTimeout = -time.Second }},
		{"HELO with a space", func(c *Config) { c.HELO = "a b" }},
		{"list id with a newline", func(c *Config) { c.ListID = "a\nb" }},
		{"feedback id with a colon", func(c *Config) { c.FeedbackID = "acme:herald" }},
		{"DKIM without key", func(c *Config) { c.DKIM = &DKIM{Domain: "herald.example", Selector: "s"} }},
		{"DKIM with a bad key", func(c *Config) { c.DKIM = &DKIM{Domain: "herald.example", Selector: "s", PrivateKey: "nope"} }},
		{"DKIM not aligned", func(c *Config) {
			c.DKIM = &DKIM{Domain: "other.example", Selector: "s", PrivateKey: secret.Value(dkimtest.Ed25519PEM)}
		}},
	} {
		c := ok
		tc.mod(&c)
		if err := c.WithDefaults().validate(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted", tc.name)
		}
	}
}
