package templates

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
)

// Addresses used in previews, from the domain reserved for examples.
const (
	previewFrom = "status@example.com"
	previewTo   = "subscriber@example.com"
)

// WriteFiles writes what a subscriber would receive into dir (created if
// needed) and returns the paths written:
//
//   - email: message.html (opens in a browser), message.txt, and
//     message.eml, the whole MIME message composed with go-mail as the
//     email channel sends it (example addresses);
//   - SMS: sms.txt;
//   - Slack: slack.json, and slack-parent.json (the living parent message);
//   - webhook: webhook.json.
func (r *Rendered) WriteFiles(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	write := func(name string, data []byte) error {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
		written = append(written, path)
		return nil
	}
	switch {
	case r.HTML != "":
		if err := write("message.html", []byte(r.HTML)); err != nil {
			return written, err
		}
		if err := write("message.txt", []byte(r.Text)); err != nil {
			return written, err
		}
		m, err := r.EmailMessage(previewFrom, previewTo, time.Now(), "preview@example.com")
		if err != nil {
			return written, err
		}
		var b strings.Builder
		if _, err := m.WriteTo(&b); err != nil {
			return written, err
		}
		if err := write("message.eml", []byte(b.String())); err != nil {
			return written, err
		}
	case r.Parent != nil:
		if err := write("slack.json", r.Body); err != nil {
			return written, err
		}
		if err := write("slack-parent.json", r.Parent); err != nil {
			return written, err
		}
	case r.Body != nil:
		if err := write("webhook.json", r.Body); err != nil {
			return written, err
		}
	case r.Text != "":
		if err := write("sms.txt", []byte(r.Text+"\n")); err != nil {
			return written, err
		}
	default:
		return nil, errors.New("templates: nothing to write")
	}
	return written, nil
}

// EmailMessage composes the rendered email as a go-mail message:
// multipart/alternative with the text and HTML parts, the subject, Date,
// Message-ID, and the headers of r.Headers. It is how previews and tests
// build the message a subscriber receives.
func (r *Rendered) EmailMessage(from, to string, date time.Time, messageID string) (*mail.Msg, error) {
	if r.HTML == "" {
		return nil, errors.New("templates: not an email rendering")
	}
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := m.From(from); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if err := m.To(to); err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	m.Subject(r.Subject)
	m.SetDateWithValue(date)
	m.SetMessageIDWithValue(messageID)
	for _, k := range sortedKeys(r.Headers) {
		m.SetGenHeader(mail.Header(k), r.Headers[k])
	}
	m.SetBodyString(mail.TypeTextPlain, r.Text)
	m.AddAlternativeString(mail.TypeTextHTML, r.HTML)
	return m, nil
}
