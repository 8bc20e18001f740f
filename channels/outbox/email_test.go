package outbox

import (
	"bytes"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/email"
	"github.com/heraldhq/herald/internal/dkimtest"
	"github.com/heraldhq/herald/secret"
)

// smtpSink is an SMTP server on 127.0.0.1 that accepts every message and
// keeps its content as received.
type smtpSink struct {
	host string
	port int

	mu  sync.Mutex
	got [][]byte
}

func newSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	s := &smtpSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: s}, nil
	}))
	srv.Domain = "mx.test"
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	s.host = host
	s.port, _ = strconv.Atoi(port)
	return s
}

// last returns the content of the last message received.
func (s *smtpSink) last(t *testing.T) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		t.Fatal("the SMTP server received nothing")
	}
	return s.got[len(s.got)-1]
}

type sinkSession struct{ sink *smtpSink }

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *sinkSession) Reset()                               {}
func (s *sinkSession) Logout() error                        { return nil }

func (s *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.sink.mu.Lock()
	s.sink.got = append(s.sink.got, data)
	s.sink.mu.Unlock()
	return nil
}

// verifyDKIM checks data's one DKIM signature against the DNS record d
// publishes and returns the signed header names.
func verifyDKIM(t *testing.T, d *email.DKIM, data []byte) []string {
	t.Helper()
	vs := dkimtest.Verify(t, d, data)
	if len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("%d signatures, want one valid: %+v", len(vs), vs)
	}
	return vs[0].HeaderKeys
}

// withoutSignature returns data without its first header field, the
// DKIM-Signature, continuation lines included.
func withoutSignature(t *testing.T, data []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(data, []byte("DKIM-Signature: ")) {
		t.Fatalf("no DKIM-Signature on top:\n%s", data)
	}
	for i := bytes.Index(data, []byte("\r\n")); i >= 0; {
		rest := data[i+2:]
		if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
			return rest
		}
		j := bytes.Index(rest, []byte("\r\n"))
		if j < 0 {
			break
		}
		i += 2 + j
	}
	t.Fatal("the DKIM-Signature field does not end")
	return nil
}

// TestEmailIsWhatTheEmailChannelSends sends the same messages through the
// email channel to an SMTP server and through an outbox given a renderer
// of the same configuration: the .eml file holds the very bytes the server
// received, DKIM signature included when configured (the signatures are
// checked; they may differ by their time of signing).
func TestEmailIsWhatTheEmailChannelSends(t *testing.T) {
	t.Parallel()
	dk := &email.DKIM{Domain: "herald.example", Selector: "herald2025", PrivateKey: secret.Value(dkimtest.Ed25519PEM)}
	notice := &channels.Message{ID: "dlv_notice_1", Kind: "endpoint.disabled", Locale: "en",
		Subject: "Notifications stopped for your webhook endpoint e4", Text: "Hello,\n\nWe stopped…\n",
		Headers: map[string]string{"List-Unsubscribe": "<mailto:unsubscribe@herald.example?subject=unsubscribe>"}}
	textOnly := emailMessage()
	textOnly.ID, textOnly.HTML = "dlv_text_only", ""
	// A maintenance notification carries its calendar event.
	withCalendar := emailMessage()
	withCalendar.ID = "dlv_maintenance"
	withCalendar.Attachments = []channels.Attachment{{Filename: "maintenance.ics", ContentType: "text/calendar; charset=UTF-8; method=PUBLISH",
		Data: []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:PUBLISH\r\nEND:VCALENDAR\r\n")}}
	for _, tc := range []struct {
		name string
		mod  func(*email.Config)
	}{
		{"From only", nil},
		{"Reply-To, List-Id and Feedback-ID", func(c *email.Config) {
			c.ReplyTo, c.ListID, c.FeedbackID = "support@herald.example", "status.herald.example", "herald"
		}},
		{"DKIM", func(c *email.Config) { c.FeedbackID, c.DKIM = "herald", dk }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			sink := newSMTPSink(t)
			cfg := email.Config{
				Host: sink.host, Port: sink.port, TLS: email.TLSNone, Pool: 1,
				From: "Herald Status <status@herald.example>", Now: b.now,
			}
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			smtpChannel, err := email.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = smtpChannel.Close() })
			renderer, err := email.NewRenderer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ob, err := New(Config{Dir: b.dir, Channel: channels.Email, Email: renderer, Now: b.now})
			if err != nil {
				t.Fatal(err)
			}
			ep := channels.Endpoint{Address: "ops@dupont.example", Name: "Boulangerie Dupont"}
			for _, msg := range []*channels.Message{emailMessage(), textOnly, notice, withCalendar} {
				relayed, err := smtpChannel.Send(t.Context(), ep, msg)
				if err != nil {
					t.Fatalf("%s: SMTP: %v", msg.ID, err)
				}
				sent := sink.last(t)
				r, err := ob.Send(t.Context(), ep, msg)
				if err != nil {
					t.Fatalf("%s: outbox: %v", msg.ID, err)
				}
				file := b.read(t, r)
				// The receipts' hashes are those of the bytes the relay got
				// and the outbox wrote: the same, but for a DKIM signature's
				// time of signing.
				if relayed.BodySHA256 != channels.HashBody(sent) || r.BodySHA256 != channels.HashBody(file) {
					t.Errorf("%s: hashes %s (relay) and %s (outbox), want those of the bytes sent and written", msg.ID, relayed.BodySHA256, r.BodySHA256)
				}
				if cfg.DKIM == nil && relayed.BodySHA256 != r.BodySHA256 {
					t.Errorf("%s: the outbox's hash %s differs from the email channel's %s", msg.ID, r.BodySHA256, relayed.BodySHA256)
				}
				if cfg.DKIM != nil {
					if h1, h2 := verifyDKIM(t, cfg.DKIM, sent), verifyDKIM(t, cfg.DKIM, file); !slices.Equal(h1, h2) {
						t.Errorf("%s: signed headers %v, the channel's %v", msg.ID, h2, h1)
					}
					sent, file = withoutSignature(t, sent), withoutSignature(t, file)
				}
				if !bytes.Equal(sent, file) {
					t.Errorf("%s: the .eml differs from what the email channel sent:\n--- sent\n%s\n--- outbox\n%s", msg.ID, sent, file)
				}
			}
		})
	}
}
