package outbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	gomail "github.com/wneessen/go-mail"

	"github.com/heraldhq/herald/channels"
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
	// From is the sender written in outboxed emails when the message's
	// headers name none. Defaults to "Herald <herald@localhost>".
	From string
	// Now is the clock that dates the files and emails. Defaults to
	// time.Now.
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
	ext := ".json"
	switch cfg.Channel {
	case channels.Email:
		ext = ".eml"
	case channels.SMS:
		ext = ".txt"
	}
	return &Channel{cfg: cfg, ext: ext}, nil
}

// Send writes msg to <Dir>/<channel>/<YYYY-MM-DD>/<id>.<ext> (UTC date)
// and returns a receipt with Outbox set and Detail the path relative to
// Dir. A retry of the same message (same id) within [Lookback] days
// overwrites the earlier file. The file is written atomically (a temporary
// file renamed into place), mode 0600.
//
// A message that cannot be rendered to a file (no id, an invalid email
// address) is a permanent failure; a file system error is retryable.
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
		content, err = c.email(ep, msg, now)
	case channels.SMS:
		content = sms(ep, msg, now)
	default:
		content, err = c.envelope(ep, msg, now)
	}
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("outbox %s: %w", c.cfg.Channel, err))
	}
	rel := c.locate(channels.EscapeID(msg.ID)+c.ext, now)
	if err := writeAtomic(filepath.Join(c.cfg.Dir, filepath.FromSlash(rel)), content); err != nil {
		return channels.Receipt{}, fmt.Errorf("outbox %s: %w", c.cfg.Channel, err)
	}
	if c.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "message written to the outbox",
			slog.String("delivery", msg.ID), slog.String("file", rel))
	}
	return channels.Receipt{Outbox: true, Detail: rel, Duration: c.cfg.Now().Sub(now)}, nil
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

// reservedHeaders are set by the outbox itself, never from msg.Headers.
var reservedHeaders = []string{
	"To", "Cc", "Bcc", "Subject", "Date", "Message-Id", "Mime-Version",
	"Content-Type", "Content-Transfer-Encoding", "From",
}

// email renders msg as an RFC 5322 message: multipart/alternative with the
// text and HTML parts, UTF-8 headers encoded, Message-ID derived from the
// delivery id, a boundary derived from it too (the file is reproducible).
func (c *Channel) email(ep channels.Endpoint, msg *channels.Message, now time.Time) ([]byte, error) {
	sum := sha256.Sum256([]byte(msg.ID))
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent(), gomail.WithBoundary("herald-"+hex.EncodeToString(sum[:12])))
	from := c.cfg.From
	if v := header(msg.Headers, "From"); v != "" {
		from = v
	}
	if err := m.From(from); err != nil {
		return nil, fmt.Errorf("invalid From address: %w", err)
	}
	var err error
	if ep.Name != "" {
		err = m.AddToFormat(ep.Name, ep.Address)
	} else {
		err = m.To(ep.Address)
	}
	if err != nil {
		return nil, errors.New("invalid recipient address")
	}
	m.Subject(oneLine(msg.Subject))
	m.SetDateWithValue(now)
	m.SetMessageIDWithValue(channels.EscapeID(msg.ID) + "@" + domainOf(from))
	if msg.Locale != "" {
		m.SetGenHeader("Content-Language", oneLine(msg.Locale))
	}
	for _, k := range sortedKeys(msg.Headers) {
		ck := canonical(k)
		if ck == "" || slices.Contains(reservedHeaders, ck) {
			continue
		}
		m.SetGenHeader(gomail.Header(ck), oneLine(msg.Headers[k]))
	}
	m.SetBodyString(gomail.TypeTextPlain, msg.Text)
	if msg.HTML != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
	}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
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
		return nil, err
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

// header returns the value of the header named k in h, whatever its case.
func header(h map[string]string, k string) string {
	for hk, v := range h {
		if strings.EqualFold(hk, k) {
			return oneLine(v)
		}
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// canonical returns the canonical form of a header name ("list-unsubscribe"
// → "List-Unsubscribe"), or "" if it is not a valid field name.
func canonical(k string) string {
	if k == "" {
		return ""
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return ""
		}
	}
	parts := strings.Split(strings.ToLower(k), "-")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "-")
}

// oneLine replaces line breaks, which would end a header line, by spaces.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

// domainOf returns the domain of a From address, for the Message-ID.
func domainOf(from string) string {
	a, err := mail.ParseAddress(from)
	if err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 && i < len(a.Address)-1 {
			return a.Address[i+1:]
		}
	}
	return "localhost"
}
