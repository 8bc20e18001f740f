package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/mail"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/email"
)

// Lookback is how many days before today Send looks for an earlier copy of
// the same message, so that a retry across midnight rewrites it in place
// instead of leaving a second copy (the dispatcher's retries span about
// three days).
const Lookback = 7

const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// Config configures an outbox.
type Config struct {
	// Dir is the outbox root, e.g. <data>/outbox. Required.
	Dir string
	// Channel is the channel this outbox stands in for: "email", "sms",
	// "slack" or "webhook". Required.
	Channel string
	// Email renders the .eml files of an email outbox: build it with
	// [email.NewRenderer] from the email channel's configuration, so that
	// a file is the very message the channel would submit, with its
	// From, Reply-To, List-Id, Feedback-ID and DKIM signature. Defaults
	// to a renderer built from From alone (no Reply-To, List-Id,
	// Feedback-ID nor DKIM). Ignored by the other channels.
	Email *email.Renderer
	// From is the sender of outboxed emails when Email is nil. Defaults
	// to "Herald <herald@localhost>".
	From string
	// Now is the clock that dates the files and emails (the Date
	// header). Defaults to time.Now.
	Now func() time.Time
	// Logger receives a debug line per file written. Defaults to a logger
	// that discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with the zero fields set to their
// defaults.
func (c Config) WithDefaults() Config {
	if c.From == "" {
		c.From = "Herald <herald@localhost>"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	if c.Dir == "" {
		return errors.New("outbox: Dir is required")
	}
	if !slices.Contains(channels.Names(), c.Channel) {
		return fmt.Errorf("outbox: unknown channel %q", c.Channel)
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("outbox: From: %w", err)
	}
	return nil
}

// Channel writes messages to files instead of sending them. It is safe for
// concurrent use.
type Channel struct {
	cfg Config
	ext string
	// render renders emails; nil for the other channels.
	render *email.Renderer
}

var _ channels.Channel = (*Channel)(nil)

// New returns an outbox for cfg.Channel and creates its directory.
func New(cfg Config) (*Channel, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, cfg.Channel), dirMode); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	c := &Channel{cfg: cfg, ext: ".json"}
	switch cfg.Channel {
	case channels.Email:
		c.ext, c.render = ".eml", cfg.Email
		if c.render == nil {
			r, err := email.NewRenderer(email.Config{From: cfg.From})
			if err != nil {
				return nil, fmt.Errorf("outbox: %w", err)
			}
			c.render = r
		}
	case channels.SMS:
		c.ext = ".txt"
	}
	return c, nil
}

// Send writes msg to <Dir>/<channel>/<YYYY-MM-DD>/<id>.<ext> (UTC date)
// and returns a receipt with Outbox set, Detail the path relative to Dir
// and BodySHA256 the hash of the file's bytes (for email, the message a
// relay would have been given, so the same hash as the email channel's). A retry of the same message (same id) within [Lookback] days
// overwrites the earlier file. The file is written atomically (a temporary
// file renamed into place), mode 0600.
//
// An email is rendered by Config.Email, exactly as the email channel would
// submit it. A message that cannot be rendered to a file (no id; for
// email, whatever the email channel refuses: an invalid address, a
// reserved header such as Subject or From, a header value holding CR or
// LF) is a permanent failure; a file system error is retryable.
func (c *Channel) Send(ctx context.Context, ep channels.Endpoint, msg *channels.Message) (channels.Receipt, error) {
	if msg == nil || msg.ID == "" {
		return channels.Receipt{}, channels.Permanent(errors.New("outbox: message has no delivery id"))
	}
	if err := ctx.Err(); err != nil {
		return channels.Receipt{}, err
	}
	now := c.cfg.Now()
	var (
		content []byte
		err     error
	)
	switch c.cfg.Channel {
	case channels.Email:
		content, err = c.render.Render(ep, msg, now)
	case channels.SMS:
		content = sms(ep, msg, now)
	default:
		content, err = c.envelope(ep, msg, now)
	}
	if err != nil {
		// The error names the channel ("email: …").
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("outbox: %w", err))
	}
	rel := c.locate(channels.EscapeID(msg.ID)+c.ext, now)
	if err := writeAtomic(filepath.Join(c.cfg.Dir, filepath.FromSlash(rel)), content); err != nil {
		return channels.Receipt{}, fmt.Errorf("outbox %s: %w", c.cfg.Channel, err)
	}
	if c.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "message written to the outbox",
			slog.String("delivery", msg.ID), slog.String("file", rel))
	}
	return channels.Receipt{Outbox: true, Detail: rel, Duration: c.cfg.Now().Sub(now), BodySHA256: channels.HashBody(content)}, nil
}

// locate returns the slash-separated path, relative to Dir, where name is
// to be written: where an earlier attempt wrote it if one did in the last
// Lookback days, otherwise under today's date.
func (c *Channel) locate(name string, now time.Time) string {
	day := now.UTC()
	for i := 1; i <= Lookback; i++ {
		rel := path.Join(c.cfg.Channel, day.AddDate(0, 0, -i).Format(time.DateOnly), name)
		if _, err := os.Stat(filepath.Join(c.cfg.Dir, filepath.FromSlash(rel))); err == nil {
			return rel
		}
	}
	return path.Join(c.cfg.Channel, day.Format(time.DateOnly), name)
}

// writeAtomic writes content to a temporary file next to name, syncs it and
// renames it into place, so readers see the old file or the new one, never
// a part.
func writeAtomic(name string, content []byte) (err error) {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(fileMode); err != nil {
		return err
	}
	if _, err := f.Write(content); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

// sms renders msg as text: header lines, a blank line, the body.
func sms(ep channels.Endpoint, msg *channels.Message, now time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "To: %s\n", oneLine(ep.Address))
	fmt.Fprintf(&b, "Date: %s\n", now.Format(time.RFC3339))
	fmt.Fprintf(&b, "Delivery: %s\n", oneLine(msg.ID))
	if msg.Locale != "" {
		fmt.Fprintf(&b, "Locale: %s\n", oneLine(msg.Locale))
	}
	b.WriteString("\n")
	b.WriteString(msg.Text)
	if !strings.HasSuffix(msg.Text, "\n") {
		b.WriteString("\n")
	}
	return b.Bytes()
}

// envelope is the JSON file of a Slack or webhook message.
type envelope struct {
	Delivery    string          `json:"delivery"`
	Channel     string          `json:"channel"`
	To          string          `json:"to"`
	Date        string          `json:"date"`
	Kind        string          `json:"kind,omitempty"`
	Locale      string          `json:"locale,omitempty"`
	ContentType string          `json:"content_type,omitempty"`
	Body        json.RawMessage `json:"body,omitempty"`
	BodyText    string          `json:"body_text,omitempty"`
	Text        string          `json:"text,omitempty"`
}

// envelope renders a Slack or webhook message as pretty-printed JSON, with
// the destination recorded without its secrets.
func (c *Channel) envelope(ep channels.Endpoint, msg *channels.Message, now time.Time) ([]byte, error) {
	e := envelope{
		Delivery:    msg.ID,
		Channel:     c.cfg.Channel,
		To:          c.destination(ep.Address),
		Date:        now.Format(time.RFC3339),
		Kind:        msg.Kind,
		Locale:      msg.Locale,
		ContentType: msg.ContentType,
	}
	switch {
	case len(msg.Body) == 0:
		e.Text = msg.Text
	case json.Valid(msg.Body):
		e.Body = msg.Body
	default:
		e.BodyText = string(msg.Body)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // Slack links are <url|text>: keep them legible
	enc.SetIndent("", "  ")
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("%s: %w", c.cfg.Channel, err)
	}
	return out.Bytes(), nil
}

// destination describes where a message would have gone, without secrets:
// a Slack incoming-webhook URL is a credential, so only its kind shows; a
// Slack channel id shows as is; a webhook URL shows as its scheme and host
// only (paths and queries may hold tokens).
func (c *Channel) destination(addr string) string {
	isURL := strings.Contains(addr, "://")
	switch c.cfg.Channel {
	case channels.Slack:
		if isURL || strings.ContainsAny(addr, "/?") {
			return "slack incoming webhook"
		}
		return oneLine(addr)
	case channels.Webhook:
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return "webhook (invalid URL)"
		}
		return u.Scheme + "://" + u.Host + "/…"
	}
	return oneLine(addr)
}

// oneLine replaces line breaks, which would end a header line, by spaces.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}
