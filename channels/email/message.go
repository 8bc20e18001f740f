package email

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	gomail "github.com/wneessen/go-mail"

	"github.com/heraldhq/herald/channels"
)

// maxHeaderValue bounds a header value from Message.Headers: one line of
// RFC 5322 at most.
const maxHeaderValue = 998

// reservedHeaders are written by the channel itself; Message.Headers may
// not set them (lower-case names).
var reservedHeaders = map[string]bool{
	"from": true, "sender": true, "to": true, "cc": true, "bcc": true,
	"subject": true, "date": true, "message-id": true, "mime-version": true,
	"content-type": true, "content-transfer-encoding": true,
	"dkim-signature": true, "return-path": true, "received": true,
}

// headerNames spells the headers Herald sets the way their RFCs do; others
// take the usual canonical form ("X-Herald-Incident").
var headerNames = map[string]string{
	"list-id":                  "List-Id",
	"list-unsubscribe":         "List-Unsubscribe",
	"list-unsubscribe-post":    "List-Unsubscribe-Post",
	"feedback-id":              "Feedback-ID",
	"content-language":         "Content-Language",
	"auto-submitted":           "Auto-Submitted",
	"reply-to":                 "Reply-To",
	"x-auto-response-suppress": "X-Auto-Response-Suppress",
}

// signedHeaders are the headers a DKIM signature covers when present;
// oversigned ones are listed twice in h=, so that a copy added in transit
// breaks the signature (RFC 6376 section 8.15). Gmail and Yahoo want
// List-Unsubscribe and List-Unsubscribe-Post signed.
var (
	signedHeaders = []string{
		"From", "Reply-To", "To", "Subject", "Date", "Message-ID",
		"MIME-Version", "Content-Type", "Content-Language", "Auto-Submitted",
		"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID",
	}
	oversignedHeaders = []string{
		"From", "Reply-To", "To", "Subject", "Date", "Message-ID",
		"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
	}
)

// envelope is a rendered message and its SMTP envelope.
type envelope struct {
	// from and to are the reverse and forward paths: "<address>".
	from, to string
	data     []byte
	// utf8 is true when an envelope address needs SMTPUTF8.
	utf8 bool
}

// Renderer renders messages exactly as the email channel submits them:
// the RFC 5322 bytes of [Channel.Send], DKIM-signed when configured. The
// channel renders every message with one, and so does the outbox (package
// outbox) for the .eml files it writes instead of sending: what a file
// holds is what the channel would have sent. A Renderer is safe for
// concurrent use.
type Renderer struct {
	from     *mail.Address
	domain   string
	replyTo  string
	listID   string
	feedback string
	dkim     *DKIM
	dkimKey  crypto.Signer
}

// NewRenderer returns the renderer of cfg. Only the fields that shape a
// message matter: From, ReplyTo, ListID, FeedbackID and DKIM, checked as
// [New] checks them; the others (server, credentials, pool, clock…) are
// ignored, so a configuration without Host will do.
func NewRenderer(cfg Config) (*Renderer, error) {
	if err := cfg.validateMessage(); err != nil {
		return nil, err
	}
	return newRenderer(cfg)
}

// newRenderer derives a Renderer from a checked cfg.
func newRenderer(cfg Config) (*Renderer, error) {
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("email: From: %w", err)
	}
	r := &Renderer{
		from:     from,
		domain:   domainOf(from.Address),
		replyTo:  cfg.ReplyTo,
		listID:   listID(cfg.ListID),
		feedback: cfg.FeedbackID,
		dkim:     cfg.DKIM,
	}
	if cfg.DKIM != nil {
		if r.dkimKey, err = cfg.DKIM.signer(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Render returns msg for ep, dated date, as the email channel would submit
// it (see [Channel.Send] for what the message holds). The boundary and the
// Message-ID derive from msg.ID, so rendering the same message, endpoint
// and date twice gives the same bytes — except for a DKIM signature, whose
// t= tag is the time of signing. An error is about the message or the
// endpoint (an invalid address, a reserved header, a header value holding
// CR or LF…): rendering it again would fail again.
func (r *Renderer) Render(ep channels.Endpoint, msg *channels.Message, date time.Time) ([]byte, error) {
	env, err := r.compose(ep, msg, date)
	if err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	return env.data, nil
}

// listID returns the List-Id header value for s: s itself when it holds
// the <id>, s in angle brackets otherwise.
func listID(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.Contains(s, "<") {
		return s
	}
	return "<" + s + ">"
}

// compose renders msg for ep, dated date, with its envelope. Every error
// it returns is about the message or the endpoint, so permanent (the
// caller marks it).
func (r *Renderer) compose(ep channels.Endpoint, msg *channels.Message, date time.Time) (envelope, error) {
	if msg == nil || msg.ID == "" {
		return envelope{}, errors.New("the message has no delivery id")
	}
	rcpt, err := mail.ParseAddress(ep.Address)
	if err != nil || rcpt.Address == "" {
		return envelope{}, errInvalidAddress
	}
	if strings.ContainsFunc(ep.Name, isControl) {
		return envelope{}, errors.New("the endpoint's name holds a control character")
	}
	if strings.ContainsFunc(msg.Subject, isControl) {
		return envelope{}, errors.New("the subject holds a control character")
	}
	if msg.Text == "" && msg.HTML == "" {
		return envelope{}, errors.New("the message has neither text nor HTML")
	}
	keys, err := headerKeys(msg.Headers)
	if err != nil {
		return envelope{}, err
	}

	if err := checkAttachments(msg.Attachments); err != nil {
		return envelope{}, err
	}
	opts := []gomail.MsgOption{gomail.WithNoDefaultUserAgent()}
	if len(msg.Attachments) == 0 {
		// go-mail gives every multipart level the one boundary it is
		// given, which only suits a message with a single level
		// (multipart/alternative); with attachments (multipart/mixed
		// around it) each level draws its own, replaced below.
		opts = append(opts, gomail.WithBoundary(r.boundary(msg)))
	}
	m := gomail.NewMsg(opts...)
	m.FromMailAddress(r.from)
	if err := m.AddToFormat(ep.Name, rcpt.Address); err != nil {
		return envelope{}, errInvalidAddress
	}
	if r.replyTo != "" {
		if err := m.ReplyTo(r.replyTo); err != nil {
			return envelope{}, fmt.Errorf("invalid Reply-To: %w", err)
		}
	}
	m.Subject(msg.Subject)
	m.SetDateWithValue(date)
	m.SetMessageIDWithValue(MessageID(msg.ID, r.domain))
	m.SetGenHeader("Auto-Submitted", "auto-generated")
	if r.listID != "" {
		m.SetGenHeader("List-Id", r.listID)
	}
	if r.feedback != "" {
		m.SetGenHeader("Feedback-ID", feedbackID(msg, r.feedback))
	}
	if isLanguageTag(msg.Locale) {
		m.SetGenHeader("Content-Language", msg.Locale)
	}
	var signed []string
	if r.dkim != nil {
		signed = slices.Clone(signedHeaders)
	}
	for _, k := range keys {
		v := msg.Headers[k.given]
		if k.name == "Reply-To" {
			if err := m.ReplyTo(v); err != nil {
				return envelope{}, errors.New("invalid Reply-To header")
			}
			continue
		}
		m.SetGenHeader(gomail.Header(k.name), v)
		if r.dkim != nil && !slices.Contains(signed, k.name) {
			signed = append(signed, k.name)
		}
	}
	if msg.Text != "" {
		m.SetBodyString(gomail.TypeTextPlain, msg.Text)
		if msg.HTML != "" {
			m.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
		}
	} else {
		m.SetBodyString(gomail.TypeTextHTML, msg.HTML)
	}
	for _, a := range msg.Attachments {
		if err := m.AttachReader(a.Filename, bytes.NewReader(a.Data),
			gomail.WithFileContentType(gomail.ContentType(a.ContentType)), gomail.WithFileEncoding(gomail.EncodingB64)); err != nil {
			return envelope{}, fmt.Errorf("attachment %s: %w", a.Filename, err)
		}
	}
	var buf bytes.Buffer
	buf.Grow(2048 + 2*(len(msg.Text)+len(msg.HTML)))
	if _, err := m.WriteTo(&buf); err != nil {
		return envelope{}, fmt.Errorf("rendering: %w", err)
	}
	data := buf.Bytes()
	if len(msg.Attachments) > 0 {
		data = r.stableBoundaries(msg, data)
	}
	if r.dkim != nil {
		if data, err = r.sign(data, signed); err != nil {
			return envelope{}, err
		}
	}
	return envelope{
		from: (&mail.Address{Address: r.from.Address}).String(),
		to:   (&mail.Address{Address: rcpt.Address}).String(),
		data: data,
		utf8: !isASCII(r.from.Address) || !isASCII(rcpt.Address),
	}, nil
}

// sign returns data with a DKIM-Signature header on top, covering the
// headers named in signed and oversigning oversignedHeaders.
func (r *Renderer) sign(data []byte, signed []string) ([]byte, error) {
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 r.dkim.Domain,
		Selector:               r.dkim.Selector,
		Signer:                 r.dkimKey,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             append(signed, oversignedHeaders...),
	})
	if err != nil {
		return nil, fmt.Errorf("DKIM: %w", err)
	}
	if _, err := s.Write(data); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("DKIM: %w", err)
	}
	if err := s.Close(); err != nil {
		return nil, fmt.Errorf("DKIM: %w", err)
	}
	sig := s.Signature()
	out := make([]byte, 0, len(sig)+len(data))
	return append(append(out, sig...), data...), nil
}

// maxAttachmentBytes bounds one attachment.
const maxAttachmentBytes = 1 << 20

// checkAttachments refuses attachments whose name or media type would
// break the MIME headers, and oversized ones.
func checkAttachments(as []channels.Attachment) error {
	for _, a := range as {
		switch {
		case a.Filename == "" || len(a.Filename) > 255 || strings.ContainsAny(a.Filename, "\"/\\") || strings.ContainsFunc(a.Filename, isControl):
			return fmt.Errorf("attachment name %q is not a plain file name", summarize(a.Filename, 64))
		case len(a.Data) > maxAttachmentBytes:
			return fmt.Errorf("attachment %s is %d bytes, over %d", a.Filename, len(a.Data), maxAttachmentBytes)
		}
		if _, _, err := mime.ParseMediaType(a.ContentType); err != nil || strings.ContainsFunc(a.ContentType, isControl) {
			return fmt.Errorf("attachment %s: invalid media type %q", a.Filename, summarize(a.ContentType, 64))
		}
	}
	return nil
}

// errInvalidAddress is the error for an endpoint address that is not an
// email address.
var errInvalidAddress = errors.New("the endpoint's address is not a valid email address")

// boundary returns the MIME boundary for msg: derived from its delivery
// id, so that a retry renders the same bytes, unless the content happens
// to hold it (then go-mail draws a random one).
func (r *Renderer) boundary(msg *channels.Message) string {
	sum := sha256.Sum256([]byte(msg.ID))
	b := "herald-" + hex.EncodeToString(sum[:12])
	if strings.Contains(msg.Text, b) || strings.Contains(msg.HTML, b) {
		return ""
	}
	return b
}

// drawnBoundary matches the boundaries go-mail draws (30 random bytes in
// hex) where a multipart starts.
var drawnBoundary = regexp.MustCompile(`boundary=([0-9a-f]{60})\r\n`)

// stableBoundaries replaces the boundaries go-mail drew for the levels of
// a message with attachments by ones derived from the delivery id (the
// first level's, then the next...), so that a message renders to the same
// bytes every time, as one without attachments does.
func (r *Renderer) stableBoundaries(msg *channels.Message, data []byte) []byte {
	base := r.boundary(msg)
	if base == "" {
		return data
	}
	for i, m := range drawnBoundary.FindAllSubmatch(data, -1) {
		data = bytes.ReplaceAll(data, m[1], []byte(base+"-"+strconv.Itoa(i)))
	}
	return data
}

// headerKey is a header of Message.Headers: the key as given and the name
// Herald writes.
type headerKey struct{ given, name string }

// headerKeys checks the headers of a message and returns their keys in a
// stable order. A name that is not a valid field name, is set twice in
// different cases, or is reserved, and a value holding a control
// character (CR and LF end a header line: they would let a value inject
// headers) or too long for a header line, are refused.
func headerKeys(h map[string]string) ([]headerKey, error) {
	keys := make([]headerKey, 0, len(h))
	seen := make(map[string]bool, len(h))
	for k, v := range h {
		if !validFieldName(k) {
			return nil, fmt.Errorf("invalid header name %q", summarize(k, 64))
		}
		lower := strings.ToLower(k)
		if reservedHeaders[lower] {
			return nil, fmt.Errorf("header %s is set by the email channel", k)
		}
		if seen[lower] {
			return nil, fmt.Errorf("header %s is set twice", k)
		}
		seen[lower] = true
		if strings.ContainsFunc(v, func(r rune) bool { return isControl(r) && r != '\t' }) {
			return nil, fmt.Errorf("header %s holds a control character (CR, LF…)", k)
		}
		if len(v) > maxHeaderValue {
			return nil, fmt.Errorf("header %s is %d bytes long, want at most %d", k, len(v), maxHeaderValue)
		}
		name, ok := headerNames[lower]
		if !ok {
			name = textproto.CanonicalMIMEHeaderKey(k)
		}
		keys = append(keys, headerKey{given: k, name: name})
	}
	slices.SortFunc(keys, func(a, b headerKey) int { return strings.Compare(a.name, b.name) })
	return keys, nil
}

// validFieldName reports whether s is an RFC 5322 field name: printable
// US-ASCII but ':'.
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// isLanguageTag reports whether s looks like a BCP 47 tag ("fr",
// "pt-BR").
func isLanguageTag(s string) bool {
	if s == "" || len(s) > 35 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// kindIncidentUpdate is the Message.Kind of incident notifications.
const kindIncidentUpdate = "incident.update"

// feedbackID returns the Feedback-ID the channel gives msg when its
// headers set none: "[<incident id>:]<mail type>:<sender>", the format
// package templates writes for Herald. Gmail reads up to four
// colon-separated identifiers from the right, the right-most being the
// sender id, consistent across the mail stream, the others grouping mail
// (campaign, customer, type) and reported on independently: here the
// incident (one announcement to many readers, never a single recipient)
// and the mail type, "incident-<status>" for an incident update
// ("incident-monitoring") or "notice-<kind>" for a service message
// ("notice-endpoint.disabled"). Empty fields are left out.
func feedbackID(msg *channels.Message, sender string) string {
	var mailType string
	switch {
	case msg.Status != "":
		mailType = "incident-" + msg.Status
	case msg.Kind == kindIncidentUpdate:
		mailType = "incident"
	case msg.Kind != "":
		mailType = "notice-" + msg.Kind
	}
	fields := make([]string, 0, 3)
	for _, f := range []string{msg.IncidentID, mailType} {
		if f = feedbackField(f); f != "" {
			fields = append(fields, f)
		}
	}
	return strings.Join(append(fields, sender), ":")
}

// feedbackField returns s fit to be one Feedback-ID field: colons, which
// separate fields, spaces and control characters dropped.
func feedbackField(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ':' || r <= ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// MessageID returns the Message-ID (without angle brackets) Herald gives
// the message with delivery id id sent from domain: the id with letters,
// digits, '-' and '_' kept and other bytes %-escaped, "@", the domain. A
// retry of the same delivery carries the same Message-ID, so receivers
// and their tools recognise it as the same message. Ids whose escaped form
// exceeds 200 bytes are replaced by "sha256-" and their SHA-256 in hex.
func MessageID(id, domain string) string {
	return channels.EscapeID(id) + "@" + domain
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
