package templates

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/heraldhq/herald/incident"
)

// webhookSchemaPath is the published contract of the webhook payload.
const webhookSchemaPath = "../docs/webhook.schema.json"

// webhookSchema compiles docs/webhook.schema.json, formats asserted.
func webhookSchema(tb testing.TB) *jsonschema.Schema {
	tb.Helper()
	f, err := os.Open(webhookSchemaPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		tb.Fatalf("%s: %v", webhookSchemaPath, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const id = "https://github.com/heraldhq/herald/docs/webhook.schema.json"
	if err := c.AddResource(id, doc); err != nil {
		tb.Fatal(err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		tb.Fatalf("%s: %v", webhookSchemaPath, err)
	}
	return sch
}

func validatePayload(tb testing.TB, sch *jsonschema.Schema, body []byte) error {
	tb.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("payload is not JSON: %v", err)
	}
	return sch.Validate(inst)
}

// TestWebhookPayloadsMatchTheSchema renders every corpus update as the
// webhook payload of a reader of every language (and of languages Herald
// does not write, which fall back), plus a per-locale update and the
// endpoint-disabled notice, and validates each against the published
// schema.
func TestWebhookPayloadsMatchTheSchema(t *testing.T) {
	t.Parallel()
	sch := webhookSchema(t)
	r := newTestRenderer(t, testConfig())
	events := loadCorpus(t)
	start := time.Date(2025, 5, 3, 9, 12, 0, 0, time.FixedZone("CEST", 2*3600))
	events = append(events, &incident.Event{
		ID: "LOC-1:2", IncidentID: "LOC-1", Sequence: 2, Status: incident.Resolved, Priority: incident.P1,
		Components: []string{"oney", "3ds"}, StartedAt: &start, PublishedAt: &start,
		Title: incident.LocalizedText(map[string]string{"fr": "Panne", "en-GB": "Outage"}),
		Body:  incident.LocalizedText(map[string]string{"fr": "C'est réparé.", "en-GB": "It is fixed."}),
	})
	// A maintenance, announced then called off.
	maintenance := localizedGolden()
	cancelled := localizedGolden()
	cancelled.ID, cancelled.Sequence, cancelled.Status, cancelled.Cancelled = "LOC-1:3", 3, incident.Completed, true
	events = append(events, maintenance, cancelled)
	headers, windows := 0, 0
	defer func() {
		if windows == 0 {
			t.Error("no payload had a maintenance window: the schema's window part went untested")
		}
	}()
	updates := make([]Update, 0, len(events)+3)
	for _, ev := range events {
		updates = append(updates, Update{Event: ev, AcceptedAt: acceptedAt})
	}
	// The maintenance's reminder, rescheduling and cancellation.
	for _, m := range goldenMaintenance() {
		updates = append(updates, m.u)
	}
	for _, u := range updates {
		ev := u.Event
		for _, locale := range []string{"fr-FR", "en-GB", "it-CH", "de-DE"} {
			out, err := r.Render(u, ChannelWebhook, testRecipient(t, locale))
			if err != nil {
				t.Fatalf("%s for %s: %v", ev.ID, locale, err)
			}
			if err := validatePayload(t, sch, out.Body); err != nil {
				t.Fatalf("%s for %s does not match the schema: %v\n%s", ev.ID, locale, err, out.Body)
			}
			if bytes.Contains(out.Body, []byte(`"header":{`)) {
				headers++
			}
			if bytes.Contains(out.Body, []byte(`"scheduled_for":`)) {
				windows++
			}
		}
	}
	if headers == 0 {
		t.Error("no payload had a parsed header: the schema's header part went untested")
	}
	n := Notice{Kind: NoticeEndpointDisabled, EndpointID: "e4", EndpointChannel: ChannelWebhook, Reason: "HTTP 410 Gone", At: acceptedAt}
	for _, locale := range []string{"fr-FR", "it-IT"} {
		out, err := r.RenderNotice(n, ChannelWebhook, testRecipient(t, locale))
		if err != nil {
			t.Fatal(err)
		}
		if err := validatePayload(t, sch, out.Body); err != nil {
			t.Fatalf("notice for %s does not match the schema: %v\n%s", locale, err, out.Body)
		}
	}
}

// TestWebhookSchemaRefuses: the schema is not a blank cheque: payloads
// that break the contract are refused.
func TestWebhookSchemaRefuses(t *testing.T) {
	t.Parallel()
	sch := webhookSchema(t)
	r := newTestRenderer(t, testConfig())
	ev := corpusEvent(t, loadCorpus(t), "TSR-1723:1")
	out, err := r.Render(Update{Event: ev, AcceptedAt: acceptedAt}, ChannelWebhook, testRecipient(t, "fr-FR"))
	if err != nil {
		t.Fatal(err)
	}
	good := string(out.Body)
	if err := validatePayload(t, sch, out.Body); err != nil {
		t.Fatalf("the payload itself: %v", err)
	}
	for name, edit := range map[string][2]string{
		"unknown type":           {`"type":"incident.updated"`, `"type":"incident.deleted"`},
		"status not an enum":     {`"status":"monitoring"`, `"status":"fixed"`},
		"sequence 0":             {`"sequence":1`, `"sequence":0`},
		"version 2":              {`"schema_version":1`, `"schema_version":2`},
		"timestamp not RFC 3339": {`"timestamp":"2025-05-03T14:11:00Z"`, `"timestamp":"03/05/2025"`},
		"unknown data field":     {`"truncated":false`, `"truncated":false,"extra":1`},
		"priority P5":            {`"priority":null`, `"priority":"P5"`},
		"header start as text":   {`"start":"2025-05-03"`, `"start":"3 May"`},
	} {
		refused(t, sch, good, name, edit)
	}

	// A maintenance's reminder and rescheduling.
	shown := goldenMaintenance()
	for i, edits := range []map[string][2]string{
		{
			"reminder as an update":     {`"type":"maintenance.reminder"`, `"type":"incident.updated"`},
			"reminder without lead":     {`"reminder":{"lead_seconds":86400}`, `"reminder":{}`},
			"reminder lead 0":           {`"lead_seconds":86400`, `"lead_seconds":0`},
			"reminder of a started one": {`"status":"scheduled"`, `"status":"in_progress"`},
		},
		{
			"rescheduled without before": {`,"previous_scheduled_until":"2025-05-06T21:00:00Z"`, ``},
			"rescheduled false":          {`"rescheduled":true`, `"rescheduled":false`},
			"before without rescheduled": {`"rescheduled":true,`, ``},
			"update with a reminder":     {`"truncated":false`, `"reminder":{"lead_seconds":60},"truncated":false`},
		},
	} {
		out, err := r.Render(shown[i].u, ChannelWebhook, testRecipient(t, "en"))
		if err != nil {
			t.Fatal(err)
		}
		if err := validatePayload(t, sch, out.Body); err != nil {
			t.Fatalf("%s: %v", shown[i].name, err)
		}
		for name, edit := range edits {
			refused(t, sch, string(out.Body), shown[i].name+": "+name, edit)
		}
	}
}

// refused checks that the schema refuses good with edit applied.
func refused(t *testing.T, sch *jsonschema.Schema, good, name string, edit [2]string) {
	t.Helper()
	bad := strings.Replace(good, edit[0], edit[1], 1)
	if bad == good {
		t.Fatalf("%s: the payload has no %s", name, edit[0])
	}
	if err := validatePayload(t, sch, []byte(bad)); err == nil {
		t.Errorf("%s: the schema accepted it", name)
	}
}
