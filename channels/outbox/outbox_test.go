package outbox

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/channelstest"
	"github.com/heraldhq/herald/internal/golden"
)

// fixedNow is the clock of the golden files.
var fixedNow = time.Date(2025, 4, 10, 9, 43, 0, 0, time.UTC)

const slackURL = "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/s3cr3tXXXXXXXXXXXXXXXXXX"

type bundle struct {
	dir   string
	clock atomic.Int64
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{dir: t.TempDir()}
	b.clock.Store(fixedNow.Unix())
	return b
}

func (b *bundle) now() time.Time { return time.Unix(b.clock.Load(), 0).UTC() }

func (b *bundle) channel(t *testing.T, name string) *Channel {
	t.Helper()
	ch, err := New(Config{Dir: b.dir, Channel: name, Now: b.now, From: "Herald Status <status@herald.example>"})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func (b *bundle) read(t *testing.T, r channels.Receipt) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.dir, filepath.FromSlash(r.Detail)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func emailMessage() *channels.Message {
	m := channelstest.SampleMessage()
	m.Subject = "[Surveillance] Double prélèvement sur les terminaux Nexo — « TSR-1610 »"
	m.Text = "Bonjour Boulangerie Dupont,\n\nUn correctif a été déployé. Nous surveillons les transactions.\n\nSe désabonner : https://herald.example/u/abc\n"
	m.HTML = "<p>Bonjour Boulangerie Dupont,</p>\n<p>Un correctif a été déployé. Nous surveillons les transactions.</p>\n"
	m.Headers = map[string]string{
		"List-Unsubscribe":      "<https://herald.example/u/abc>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"x-herald-incident":     "TSR-1610",
	}
	return m
}

func TestGolden(t *testing.T) {
	t.Parallel()
	sms := channelstest.SampleMessage()
	sms.Text = "Herald TSR-1610 [Surveillance] Double prélèvement Nexo : correctif déployé. Détails : https://status.example.com/i/TSR-1610"
	slack := channelstest.SampleMessage()
	slack.Body = []byte(`{"text":"Double prélèvement","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*Surveillance* <https://status.example.com/i/TSR-1610|TSR-1610> & co"}}]}`)
	for _, tc := range []struct {
		golden  string
		channel string
		ep      channels.Endpoint
		msg     *channels.Message
		path    string
	}{
		{"email.eml", channels.Email, channels.Endpoint{Address: "ops@dupont.example", Name: "Boulangerie Dupont"}, emailMessage(),
			"email/2025-04-10/dlv_5c1f0e9a7b3d4e21.eml"},
		{"sms.txt", channels.SMS, channels.Endpoint{Address: "+33612345678"}, sms,
			"sms/2025-04-10/dlv_5c1f0e9a7b3d4e21.txt"},
		{"slack-webhook.json", channels.Slack, channels.Endpoint{Address: slackURL}, slack,
			"slack/2025-04-10/dlv_5c1f0e9a7b3d4e21.json"},
		{"slack-channel.json", channels.Slack, channels.Endpoint{Address: "C0123ABCD"}, slack,
			"slack/2025-04-10/dlv_5c1f0e9a7b3d4e21.json"},
		{"webhook.json", channels.Webhook, channels.Endpoint{Address: "https://dupont.example/hooks/status?token=tok_s3cr3t", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, channelstest.SampleMessage(),
			"webhook/2025-04-10/dlv_5c1f0e9a7b3d4e21.json"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			r, err := b.channel(t, tc.channel).Send(t.Context(), tc.ep, tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Outbox || r.Detail != tc.path {
				t.Errorf("receipt = %+v, want Outbox and Detail %q", r, tc.path)
			}
			got := b.read(t, r)
			if r.BodySHA256 != channels.HashBody(got) {
				t.Errorf("receipt's BodySHA256 %s is not the hash of the file written", r.BodySHA256)
			}
			for _, s := range []string{"s3cr3t", "whsec_", "MfKQ9r8G", "\r\nBcc:"} {
				if bytes.Contains(got, []byte(s)) {
					t.Errorf("the file holds %q", s)
				}
			}
			golden.Check(t, filepath.Join("testdata", tc.golden), got)
		})
	}
}

// TestEmailIsAValidMessage parses the .eml as a mail client would.
func TestEmailIsAValidMessage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	msg := emailMessage()
	r, err := b.channel(t, channels.Email).Send(t.Context(), channels.Endpoint{Address: "ops@dupont.example", Name: "Boulangerie Dupont"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(b.read(t, r)))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != msg.Subject {
		t.Errorf("Subject = %q (%v), want %q", subject, err, msg.Subject)
	}
	to, err := m.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "ops@dupont.example" || to[0].Name != "Boulangerie Dupont" {
		t.Errorf("To = %v (%v)", to, err)
	}
	if from, err := m.Header.AddressList("From"); err != nil || from[0].Address != "status@herald.example" {
		t.Errorf("From = %v (%v)", from, err)
	}
	if id := m.Header.Get("Message-Id"); id != "<dlv_5c1f0e9a7b3d4e21@herald.example>" {
		t.Errorf("Message-ID = %q", id)
	}
	if d, err := m.Header.Date(); err != nil || !d.Equal(fixedNow) {
		t.Errorf("Date = %v (%v)", d, err)
	}
	for k, want := range map[string]string{
		"List-Unsubscribe":      "<https://herald.example/u/abc>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"X-Herald-Incident":     "TSR-1610",
		"Content-Language":      "fr",
		"Auto-Submitted":        "auto-generated",
		"Bcc":                   "",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v)", m.Header.Get("Content-Type"), err)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, cp, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if cp["charset"] != "UTF-8" {
			t.Errorf("%s charset = %q", ct, cp["charset"])
		}
		var body io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			body = quotedprintable.NewReader(p)
		}
		data, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		parts[ct] = string(data)
	}
	if got := strings.ReplaceAll(parts["text/plain"], "\r\n", "\n"); got != msg.Text {
		t.Errorf("text part = %q, want %q", got, msg.Text)
	}
	if got := strings.ReplaceAll(parts["text/html"], "\r\n", "\n"); got != msg.HTML {
		t.Errorf("HTML part = %q, want %q", got, msg.HTML)
	}
}

// TestRetryOverwrites sends the same delivery again, the same day and after
// midnight: one file, holding the last attempt.
func TestRetryOverwrites(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ch := b.channel(t, channels.SMS)
	ep := channels.Endpoint{Address: "+33612345678"}
	msg := channelstest.SampleMessage()
	first, err := ch.Send(t.Context(), ep, msg)
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range []time.Duration{time.Hour, 20 * time.Hour, 48 * time.Hour} {
		b.clock.Add(int64(step / time.Second))
		msg.Text = "attempt " + string(rune('2'+i))
		msg.Attempt = i + 2
		r, err := ch.Send(t.Context(), ep, msg)
		if err != nil {
			t.Fatal(err)
		}
		if r.Detail != first.Detail {
			t.Errorf("retry %d wrote %s, want %s", i+1, r.Detail, first.Detail)
		}
		if !strings.HasSuffix(string(b.read(t, r)), msg.Text+"\n") {
			t.Errorf("retry %d: the file does not hold the last attempt", i+1)
		}
	}
	files := listFiles(t, b.dir)
	if len(files) != 1 {
		t.Errorf("files = %v, want one", files)
	}
	// Beyond the lookback a new day's file is written.
	b.clock.Add(int64(Lookback * 24 * time.Hour / time.Second))
	r, err := ch.Send(t.Context(), ep, msg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Detail == first.Detail {
		t.Error("a send beyond the lookback reused the old file")
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestPermissionsAndConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ch := b.channel(t, channels.Webhook)
	ep := channels.Endpoint{Address: "https://dupont.example/hooks"}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			msg := channelstest.SampleMessage()
			if i%2 == 1 {
				msg.ID = "dlv_other"
			}
			if _, err := ch.Send(t.Context(), ep, msg); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	files := listFiles(t, b.dir)
	if len(files) != 2 {
		t.Errorf("files = %v, want two (no duplicates, no temporary files left)", files)
	}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(b.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
		for d := filepath.Dir(filepath.Join(b.dir, f)); d != b.dir; d = filepath.Dir(d) {
			st, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o700 {
				t.Errorf("%s mode %v, want 0700", d, st.Mode().Perm())
			}
		}
	}
}

func TestFileName(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ch := b.channel(t, channels.SMS)
	seen := map[string]string{}
	for _, id := range []string{"../../etc/passwd", "a/b", "a%2Fb", "a:b", "a_b", ".hidden", "TSR-1610:3", strings.Repeat("x", 300), strings.Repeat("x", 301)} {
		msg := channelstest.SampleMessage()
		msg.ID = id
		r, err := ch.Send(t.Context(), channels.Endpoint{Address: "+33612345678"}, msg)
		if err != nil {
			t.Fatalf("%q: %v", id, err)
		}
		dir, name := filepath.Split(filepath.FromSlash(r.Detail))
		if filepath.Clean(dir) != filepath.Join("sms", "2025-04-10") || strings.HasPrefix(name, ".") || len(name) > 255 {
			t.Errorf("%q written to %q", id, r.Detail)
		}
		if other, dup := seen[r.Detail]; dup {
			t.Errorf("%q and %q share the file %s", id, other, r.Detail)
		}
		seen[r.Detail] = id
	}
	if files := listFiles(t, b.dir); len(files) != len(seen) {
		t.Errorf("%d files for %d ids: %v", len(files), len(seen), files)
	}
}

func TestSendFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	email := b.channel(t, channels.Email)
	noID := channelstest.SampleMessage()
	noID.ID = ""
	withHeader := func(k, v string) *channels.Message {
		m := channelstest.SampleMessage()
		m.Headers[k] = v
		return m
	}
	dupont := channels.Endpoint{Address: "ops@dupont.example"}
	// The email channel refuses the same messages.
	for name, tc := range map[string]struct {
		ep  channels.Endpoint
		msg *channels.Message
	}{
		"nil message":            {dupont, nil},
		"no id":                  {dupont, noID},
		"bad recipient":          {channels.Endpoint{Address: "not an address"}, channelstest.SampleMessage()},
		"From header":            {dupont, withHeader("From", "Other <other@herald.example>")},
		"Subject header":         {dupont, withHeader("subject", "another subject")},
		"invalid header name":    {dupont, withHeader("Bad Header", "x")},
		"header injection":       {dupont, withHeader("X-Injected", "a\r\nBcc: victim@example.com")},
		"empty address":          {channels.Endpoint{}, channelstest.SampleMessage()},
		"neither text nor HTML":  {dupont, &channels.Message{ID: "dlv_empty", Subject: "x"}},
		"subject with a newline": {dupont, &channels.Message{ID: "dlv_subject", Subject: "a\nb", Text: "x"}},
	} {
		_, err := email.Send(t.Context(), tc.ep, tc.msg)
		if c := channels.Classify(err); err == nil || !c.Permanent {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
	}
	if files := listFiles(t, b.dir); len(files) != 0 {
		t.Errorf("failed sends wrote %v", files)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, cfg := range []Config{
		{Channel: channels.Email},
		{Dir: dir},
		{Dir: dir, Channel: "fax"},
		{Dir: dir, Channel: channels.Email, From: "not an address"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{Dir: dir, Channel: channels.Slack}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, channels.Slack)); err != nil || !st.IsDir() {
		t.Errorf("New did not create the channel directory: %v", err)
	}
}
