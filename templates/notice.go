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

// Notice is a service message to a subscriber, about Herald itself rather
// than an incident.
type Notice struct {
	// Kind is the notice kind; only [NoticeEndpointDisabled] exists.
	Kind string
	// EndpointID and EndpointChannel name the endpoint concerned.
	EndpointID, EndpointChannel string
	// Reason says why, in a short secret-free phrase ("HTTP 410 Gone").
	Reason string
	// At is when it happened.
	At time.Time
}

// noticeView is the data of the notice templates.
type noticeView struct {
	cat *catalog

	T         map[string]map[string]string
	Lang      string
	Kind      string
	Subject   string
	Body      string
	Action    string
	Endpoint  string
	Channel   string
	Reason    string
	At        string
	Recipient recipientView
}

// Tr returns the catalog string of key with its placeholders filled.
func (v *noticeView) Tr(key string, args ...string) (string, error) {
	return v.cat.format(key, args...)
}

// RenderNotice renders a service notice for one channel. Notices are rare
// and not cached.
func (r *Renderer) RenderNotice(n Notice, channel string, rc Recipient) (*Rendered, error) {
	if n.Kind != NoticeEndpointDisabled {
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
		shape := recipientShape(rc)
		v.Recipient = placeholderRecipient(shape)
		subject, err := r.tmpl.execText("notice.subject.tmpl", v)
		if err != nil {
			return nil, err
		}
		out.Subject = subjectLine(subject)
		v.Subject = out.Subject
		text, err := r.tmpl.execText("notice.txt.tmpl", v)
		if err != nil {
			return nil, err
		}
		if out.HTML, err = r.tmpl.execHTML("notice.html.tmpl", v); err != nil {
			return nil, err
		}
		out.Text = tidyText(text)
		r.personalize(out, rc)
		out.Headers = r.emailHeaders(rc, lang, "notice-"+n.Kind, "")
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
