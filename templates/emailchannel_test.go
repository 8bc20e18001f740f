package templates_test

import (
	"bytes"
	"net/mail"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/email"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/templates"
)

// TestEmailChannelDefaultsAgree renders an update and a notice, builds the
// message the dispatcher sends from each, drops the headers the email
// channel also writes by default, and has package email render it: the
// channel's defaults must be the values the templates wrote, so that
// Herald's output does not depend on which layer writes them.
func TestEmailChannelDefaultsAgree(t *testing.T) {
	t.Parallel()
	const listID = "incidents.status.example.com" // bare: both put it in brackets
	r, err := templates.New(templates.Config{StatusPageURL: "https://status.example.com", ListID: listID})
	if err != nil {
		t.Fatal(err)
	}
	er, err := email.NewRenderer(email.Config{From: "Status <status@status.example.com>", ListID: listID, FeedbackID: "herald"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 5, 3, 14, 11, 0, 0, time.UTC)
	ev := &incident.Event{
		ID: "TSR-1610:3", IncidentID: "TSR-1610", Sequence: 3, Status: incident.Monitoring, Priority: incident.P2,
		Components:  []string{"nexo-terminals"},
		Title:       incident.LocalizedText(map[string]string{"fr": "Double prélèvement", "en": "Duplicate charges"}),
		Body:        incident.LocalizedText(map[string]string{"fr": "Un correctif est déployé.", "en": "A fix is deployed."}),
		URL:         "https://status.example.com/incidents/TSR-1610",
		PublishedAt: &at,
	}
	rc := templates.Recipient{Locale: "fr-BE", Location: time.UTC, Name: "Boulangerie Dupont",
		UnsubscribeURL: "https://herald.example.com/unsubscribe/AbC123"}
	defaulted := []string{"Auto-Submitted", "List-Id", "Feedback-ID", "Content-Language"}
	for _, tc := range []struct {
		name   string
		render func() (*templates.Rendered, error)
		msg    channels.Message
	}{
		{"incident update", func() (*templates.Rendered, error) {
			return r.Render(templates.Update{Event: ev}, templates.ChannelEmail, rc)
		}, channels.Message{ID: "dlv_update", Kind: "incident.update", IncidentID: ev.IncidentID, Status: string(ev.Status)}},
		{"notice", func() (*templates.Rendered, error) {
			return r.RenderNotice(templates.Notice{Kind: templates.NoticeEndpointDisabled, EndpointID: "e4",
				EndpointChannel: templates.ChannelWebhook, Reason: "HTTP 410 Gone", At: at}, templates.ChannelEmail, rc)
		}, channels.Message{ID: "dlv_notice", Kind: templates.NoticeEndpointDisabled}},
	} {
		out, err := tc.render()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		msg := tc.msg
		msg.Locale, msg.Subject, msg.Text, msg.HTML = out.Locale, out.Subject, out.Text, out.HTML
		msg.Headers = map[string]string{}
		for k, v := range out.Headers {
			msg.Headers[k] = v
		}
		for _, k := range defaulted {
			delete(msg.Headers, k)
		}
		data, err := er.Render(channels.Endpoint{Address: "ops@dupont.example"}, &msg, at)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		m, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, k := range defaulted {
			if got, want := m.Header.Get(k), out.Headers[k]; got != want || want == "" {
				t.Errorf("%s: the channel writes %s %q, the templates %q", tc.name, k, got, want)
			}
		}
	}
}
