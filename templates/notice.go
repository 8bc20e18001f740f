package templates

import (
	"fmt"
	"time"

	"golang.org/x/text/language"
)

// NoticeEndpointDisabled is the kind of the notice sent when Herald stops
// using one of a subscriber's endpoints (HTTP 410 Gone, repeated
// failures, invalid number).
const NoticeEndpointDisabled = "endpoint.disabled"

// The notices of the public pages: they go to an address that is not (or
// not yet) an active endpoint, and carry a signed link or a code.
const (
	// NoticeConfirm asks to confirm an address (double opt-in), by email,
	// with a link.
	NoticeConfirm = "address.confirm"
	// NoticeFollowConfirm asks to confirm the following of one incident,
	// by email, with a link.
	NoticeFollowConfirm = "follow.confirm"
	// NoticeManageLink carries a link to the preference centre, by email.
	NoticeManageLink = "manage.link"
	// NoticeCode carries the code that confirms a phone number, by SMS.
	NoticeCode = "address.code"
)

// Notice is a service message to a subscriber, about Herald itself rather
// than an incident.
type Notice struct {
	// Kind is the notice kind: [NoticeEndpointDisabled], or one of the
	// public pages' notices.
	Kind string
	// EndpointID and EndpointChannel name the endpoint concerned.
	EndpointID, EndpointChannel string
	// Reason says why, in a short secret-free phrase ("HTTP 410 Gone").
	Reason string
	// At is when it happened.
	At time.Time
	// Link is the signed link of NoticeConfirm, NoticeFollowConfirm and
	// NoticeManageLink (http or https).
	Link string
	// Code is the code of NoticeCode.
	Code string
	// IncidentID names the incident of NoticeFollowConfirm.
	IncidentID string
	// Expires is when the link or code stops working.
	Expires time.Time
}

// noticeView is the data of the notice templates.
type noticeView struct {
	cat *catalog

	T        map[string]map[string]string
	Lang     string
	Kind     string
	Subject  string
	Body     string
	Action   string
	Endpoint string
	Channel  string
	Reason   string
	At       string
	Link     string
	// Expiry is, for a link, the sentence saying until when it works.
	Expiry    string
	Recipient recipientView
}

// Tr returns the catalog string of key with its placeholders filled.
func (v *noticeView) Tr(key string, args ...string) (string, error) {
	return v.cat.format(key, args...)
}

// RenderNotice renders a service notice for one channel. Notices are rare
// and not cached.
func (r *Renderer) RenderNotice(n Notice, channel string, rc Recipient) (*Rendered, error) {
	switch n.Kind {
	case NoticeEndpointDisabled:
	case NoticeConfirm, NoticeFollowConfirm, NoticeManageLink, NoticeCode:
		return r.renderAddressNotice(n, channel, rc)
	default:
		return nil, fmt.Errorf("templates: %w %q", ErrUnknownNotice, n.Kind)
	}
	lang, conf := r.locales.match(rc.Locale)
	cat := r.cats[lang]
	loc := rc.Location
	if loc == nil {
		loc = time.UTC
	}
	chName := n.EndpointChannel
	if s, ok := cat.get("channel." + n.EndpointChannel); ok {
		chName = s
	}
	v := &noticeView{cat: cat, T: cat.tables, Lang: lang, Kind: n.Kind,
		Endpoint: cleanLine(n.EndpointID), Channel: chName, Reason: cleanLine(n.Reason)}
	if !n.At.IsZero() {
		v.At = formatTime(n.At, loc, cat, false)
	}
	v.Subject = subjectLine(cat.must("notice.disabled_subject", "channel", v.Channel, "endpoint", v.Endpoint))
	v.Body = cat.must("notice.disabled_body", "channel", v.Channel, "endpoint", v.Endpoint, "at", v.At, "reason", v.Reason)
	v.Action = cat.must("notice.disabled_action")
	out := &Rendered{Locale: lang, Frame: lang, Requested: rc.Locale, Fallback: conf == language.No, Confidence: confidenceName(conf), Subject: v.Subject}
	switch channel {
	case ChannelEmail:
		if err := r.noticeEmail(out, v, rc, lang, n.Kind); err != nil {
			return nil, err
		}
	case ChannelSMS:
		text, c := fitPlain(smsText(v.Body), r.cfg.SMSSegments)
		out.Text, out.Segments, out.Encoding = text, c.Segments, c.Encoding.String()
	case ChannelSlack:
		msg := slackMessage{Text: escapeMrkdwn(v.Subject), Blocks: []slackBlock{
			slackHeader(":warning: " + v.Subject),
			{Type: "section", Text: mrkdwn(clip(escapeMrkdwn(v.Body+"\n"+v.Action), slackMaxSectionText))},
		}}
		body, err := marshalJSON(msg)
		if err != nil {
			return nil, err
		}
		out.Text, out.Body, out.ContentType = msg.Text, body, "application/json"
	case ChannelWebhook:
		at := n.At.UTC().Format(time.RFC3339)
		body, err := marshalJSON(webhookPayload{Type: n.Kind, Timestamp: at, Data: map[string]any{
			"schema_version": WebhookSchemaVersion, "endpoint_id": n.EndpointID, "channel": n.EndpointChannel,
			"reason": v.Reason, "disabled_at": at, "locale": lang, "message": v.Body,
		}})
		if err != nil {
			return nil, err
		}
		out.Body, out.ContentType = body, "application/json"
	default:
		return nil, fmt.Errorf("templates: %w %q", ErrUnknownChannel, channel)
	}
	return out, nil
}

// noticeEmail renders the email of a notice whose view is ready.
func (r *Renderer) noticeEmail(out *Rendered, v *noticeView, rc Recipient, lang, kind string) error {
	v.Recipient = placeholderRecipient(recipientShape(rc))
	subject, err := r.tmpl.execText("notice.subject.tmpl", v)
	if err != nil {
		return err
	}
	out.Subject = subjectLine(subject)
	v.Subject = out.Subject
	text, err := r.tmpl.execText("notice.txt.tmpl", v)
	if err != nil {
		return err
	}
	if out.HTML, err = r.tmpl.execHTML("notice.html.tmpl", v); err != nil {
		return err
	}
	out.Text = tidyText(text)
	r.personalize(out, rc)
	out.Headers = r.emailHeaders(rc, lang, "notice-"+kind, "")
	return nil
}

// renderAddressNotice renders the notices of the public pages: a link by
// email, or a code by SMS. They carry no unsubscribe link: they are sent
// once, because someone asked for them.
func (r *Renderer) renderAddressNotice(n Notice, channel string, rc Recipient) (*Rendered, error) {
	lang, conf := r.locales.match(rc.Locale)
	cat := r.cats[lang]
	loc := rc.Location
	if loc == nil {
		loc = time.UTC
	}
	v := &noticeView{cat: cat, T: cat.tables, Lang: lang, Kind: n.Kind}
	if !n.Expires.IsZero() {
		v.Expiry = formatTime(n.Expires, loc, cat, false)
	}
	out := &Rendered{Locale: lang, Requested: rc.Locale, Fallback: conf == language.No, Confidence: confidenceName(conf)}
	if n.Kind == NoticeCode {
		if channel != ChannelSMS {
			return nil, fmt.Errorf("templates: %w %q for notice %s", ErrUnknownChannel, channel, n.Kind)
		}
		if !validCode(n.Code) {
			return nil, fmt.Errorf("templates: notice %s: the code must be 4 to 10 digits", n.Kind)
		}
		v.Body = cat.must("notice.code_sms", "code", n.Code, "expires", v.Expiry)
		text, c := fitPlain(smsText(v.Body), r.cfg.SMSSegments)
		out.Subject, out.Text, out.Segments, out.Encoding = subjectLine(v.Body), text, c.Segments, c.Encoding.String()
		return out, nil
	}
	if channel != ChannelEmail {
		return nil, fmt.Errorf("templates: %w %q for notice %s", ErrUnknownChannel, channel, n.Kind)
	}
	if !safeURL(n.Link) {
		return nil, fmt.Errorf("templates: notice %s needs an http(s) link", n.Kind)
	}
	prefix := map[string]string{NoticeConfirm: "confirm", NoticeFollowConfirm: "follow", NoticeManageLink: "manage"}[n.Kind]
	incidentID := cleanLine(n.IncidentID)
	v.Subject = subjectLine(cat.must("notice."+prefix+"_subject", "incident", incidentID))
	v.Body = cat.must("notice."+prefix+"_body", "incident", incidentID)
	v.Action = cat.must("notice." + prefix + "_action")
	v.Link = n.Link
	if v.Expiry != "" {
		v.Expiry = cat.must("notice.expires", "expires", v.Expiry)
	}
	out.Subject = v.Subject
	rc.UnsubscribeURL, rc.PreferencesURL = "", ""
	if err := r.noticeEmail(out, v, rc, lang, n.Kind); err != nil {
		return nil, err
	}
	return out, nil
}

func validCode(s string) bool {
	if len(s) < 4 || len(s) > 10 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
