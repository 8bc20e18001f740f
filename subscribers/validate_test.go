package subscribers

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/incident"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func testRules(t testing.TB) Rules {
	t.Helper()
	cat, err := incident.NewCatalog(incident.DefaultComponents())
	if err != nil {
		t.Fatal(err)
	}
	return Rules{Components: cat}
}

func valid() *Subscriber {
	return &Subscriber{
		ID: "m_1042", Name: "Boulangerie Dupont", Locale: "fr-FR", Timezone: "Europe/Paris",
		Components: []string{"nexo-terminals", "3ds"}, MinPriority: "P3",
		Endpoints: []Endpoint{
			{ID: "e1", Channel: "email", Address: "ops@Dupont.Example"},
			{ID: "e2", Channel: "sms", Address: "+33 6 12 34 56 78", MinPriority: "P1"},
			{ID: "e3", Channel: "slack", WebhookURL: "https://hooks.slack.com/services/T000/B000/XXXX"},
			{ID: "e4", Channel: "webhook", URL: "https://dupont.example/hooks/status", Secret: testSecret,
				QuietHours: &QuietHours{Start: "22:00", End: "07:00"}},
		},
	}
}

func TestNormalizeValid(t *testing.T) {
	s := valid()
	if err := testRules(t).Normalize(s); err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	if got := s.Endpoints[1].Address; got != "+33612345678" {
		t.Errorf("phone = %q, want E.164 +33612345678", got)
	}
	if got := s.Endpoints[0].Address; got != "ops@dupont.example" {
		t.Errorf("email = %q, want the domain lower-cased", got)
	}
	if got := s.Components; strings.Join(got, ",") != "3ds,nexo-terminals" {
		t.Errorf("components = %v, want sorted", got)
	}
}

func TestNormalizeErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *Subscriber)
		field  string
		msg    string
	}{
		{"missing id", func(s *Subscriber) { s.ID = "" }, "id", "is required"},
		{"bad id", func(s *Subscriber) { s.ID = "a b" }, "id", "letters, digits"},
		{"long id", func(s *Subscriber) { s.ID = strings.Repeat("a", 65) }, "id", "1 to 64"},
		{"missing locale", func(s *Subscriber) { s.Locale = "" }, "locale", "is required"},
		{"bad locale", func(s *Subscriber) { s.Locale = "français!" }, "locale", "BCP 47"},
		{"bad zone", func(s *Subscriber) { s.Timezone = "Europe/Lutece" }, "timezone", "IANA"},
		{"local zone", func(s *Subscriber) { s.Timezone = "Local" }, "timezone", "IANA"},
		{"unknown component", func(s *Subscriber) { s.Components = []string{"mainframe"} }, "components[0]", "unknown component"},
		{"bad priority", func(s *Subscriber) { s.MinPriority = "P5" }, "min_priority", "P1, P2"},
		{"bad status", func(s *Subscriber) { s.Statuses = []incident.Status{"closed"} }, "statuses[0]", "must be one of"},
		{"no endpoints", func(s *Subscriber) { s.Endpoints = nil }, "endpoints", "at least one"},
		{"duplicate endpoint", func(s *Subscriber) { s.Endpoints[1].ID = "e1" }, "endpoints[1].id", "already used"},
		{"unknown channel", func(s *Subscriber) { s.Endpoints[0].Channel = "fax" }, "endpoints[0].channel", "must be one of"},
		{"bad email", func(s *Subscriber) { s.Endpoints[0].Address = "ops@" }, "endpoints[0].address", "not an email"},
		{"email with name", func(s *Subscriber) { s.Endpoints[0].Address = "Ops <ops@dupont.example>" }, "endpoints[0].address", "not an email"},
		{"email no domain", func(s *Subscriber) { s.Endpoints[0].Address = "ops@dupont" }, "endpoints[0].address", "no usable domain"},
		{"phone national form", func(s *Subscriber) { s.Endpoints[1].Address = "06 12 34 56 78" }, "endpoints[1].address", "international form"},
		{"phone invalid", func(s *Subscriber) { s.Endpoints[1].Address = "+33 1" }, "endpoints[1].address", "phone number"},
		{"phone letters", func(s *Subscriber) { s.Endpoints[1].Address = "+hello" }, "endpoints[1].address", "phone number"},
		{"phone unassigned", func(s *Subscriber) { s.Endpoints[1].Address = "+999 123 456 789" }, "endpoints[1].address", "phone number"},
		{"webhook http", func(s *Subscriber) { s.Endpoints[3].URL = "http://dupont.example/h" }, "endpoints[3].url", "https"},
		{"webhook relative", func(s *Subscriber) { s.Endpoints[3].URL = "/hooks" }, "endpoints[3].url", "absolute"},
		{"webhook credentials", func(s *Subscriber) { s.Endpoints[3].URL = "https://u:p@dupont.example/h" }, "endpoints[3].url", "credentials"},
		{"webhook no secret", func(s *Subscriber) { s.Endpoints[3].Secret = "" }, "endpoints[3].secret", "is required"},
		{"webhook secret prefix", func(s *Subscriber) { s.Endpoints[3].Secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }, "endpoints[3].secret", "whsec_"},
		{"webhook secret short", func(s *Subscriber) { s.Endpoints[3].Secret = "whsec_c2hvcnQ=" }, "endpoints[3].secret", "24 to 64"},
		{"webhook secret base64", func(s *Subscriber) { s.Endpoints[3].Secret = "whsec_!!!" }, "endpoints[3].secret", "base64"},
		{"slack both", func(s *Subscriber) { s.Endpoints[2].SlackChannel = "C0123ABCD" }, "endpoints[2]", "not both"},
		{"slack none", func(s *Subscriber) { s.Endpoints[2].WebhookURL = "" }, "endpoints[2]", "needs webhook_url"},
		{"slack foreign host", func(s *Subscriber) { s.Endpoints[2].WebhookURL = "https://evil.example/services/x" }, "endpoints[2].webhook_url", "Slack incoming-webhook"},
		{"slack bad channel", func(s *Subscriber) {
			s.Endpoints[2].WebhookURL = ""
			s.Endpoints[2].SlackChannel = "#general"
		}, "endpoints[2].slack_channel", "channel id"},
		{"field of another channel", func(s *Subscriber) { s.Endpoints[0].URL = "https://x.example" }, "endpoints[0].url", "not used by channel email"},
		{"endpoint widens components", func(s *Subscriber) { s.Endpoints[0].Components = []string{"oney"} }, "endpoints[0].components", "only narrow"},
		{"endpoint bad priority", func(s *Subscriber) { s.Endpoints[0].MinPriority = "high" }, "endpoints[0].min_priority", "P1"},
		{"quiet bad clock", func(s *Subscriber) { s.Endpoints[3].QuietHours.Start = "25:00" }, "endpoints[3].quiet_hours.start", "HH:MM"},
		{"quiet empty window", func(s *Subscriber) { s.Endpoints[3].QuietHours.End = "22:00" }, "endpoints[3].quiet_hours", "differ"},
		{"name control chars", func(s *Subscriber) { s.Name = "a\x00b" }, "name", "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.mutate(s)
			err := testRules(t).Normalize(s)
			var fe FieldErrors
			if !errors.As(err, &fe) {
				t.Fatalf("Normalize = %v, want FieldErrors", err)
			}
			for _, f := range fe {
				if f.Field == tt.field && strings.Contains(f.Message, tt.msg) {
					return
				}
			}
			t.Fatalf("errors %q lack %s: ...%s...", err, tt.field, tt.msg)
		})
	}
}

func TestNormalizeNeverEchoesSecrets(t *testing.T) {
	s := valid()
	s.Endpoints[3].Secret = "whsec_TOPSECRETVALUE!"
	s.Endpoints[2].WebhookURL = "https://evil.example/services/TOPSECRETHOOK"
	err := testRules(t).Normalize(s)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, leak := range []string{"TOPSECRETVALUE", "TOPSECRETHOOK"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q echoes a secret", err)
		}
	}
}

func TestNormalizeRules(t *testing.T) {
	s := valid()
	s.Endpoints[3].URL = "http://127.0.0.1:8080/h"
	s.Endpoints[1].Address = "06 12 34 56 78"
	s.Components = []string{"anything-goes"}
	r := Rules{AllowHTTPWebhooks: true, DefaultRegion: "fr"}
	if err := r.Normalize(s); err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	if s.Endpoints[1].Address != "+33612345678" {
		t.Errorf("phone = %q", s.Endpoints[1].Address)
	}
}

func TestRedactedMasksSecrets(t *testing.T) {
	s := valid()
	b, err := json.Marshal(s.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2La", "services/T000/B000/XXXX"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("redacted JSON %s leaks %q", b, leak)
		}
	}
	if !strings.Contains(string(b), `"secret":"whsec_…LaSw"`) {
		t.Errorf("redacted JSON %s lacks the masked secret", b)
	}
	// The stored form keeps them.
	data, err := encode(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Endpoints[3].Secret.Reveal() != testSecret || back.Endpoints[2].WebhookURL.Reveal() != s.Endpoints[2].WebhookURL.Reveal() {
		t.Errorf("stored form lost secrets: %s", data)
	}
}

func TestQuietHoursWindow(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, paris)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		q     QuietHours
		now   string
		quiet bool
		until string
		loc   *time.Location
	}{
		{QuietHours{"22:00", "07:00"}, "2025-05-03 23:30", true, "2025-05-04 07:00", paris},
		{QuietHours{"22:00", "07:00"}, "2025-05-04 06:59", true, "2025-05-04 07:00", paris},
		{QuietHours{"22:00", "07:00"}, "2025-05-04 07:00", false, "", paris},
		{QuietHours{"22:00", "07:00"}, "2025-05-04 12:00", false, "", paris},
		{QuietHours{"12:00", "14:00"}, "2025-05-04 13:00", true, "2025-05-04 14:00", paris},
		{QuietHours{"12:00", "14:00"}, "2025-05-04 14:00", false, "", paris},
		// Daylight saving starts on 2025-03-30 at 02:00 in Paris: the
		// window still ends at 07:00 local.
		{QuietHours{"22:00", "07:00"}, "2025-03-29 23:00", true, "2025-03-30 07:00", paris},
		// nil location is UTC: 23:30 Paris is 21:30 UTC, outside.
		{QuietHours{"22:00", "07:00"}, "2025-05-03 23:30", false, "", nil},
	}
	for _, tt := range tests {
		quiet, until := tt.q.Window(at(tt.now), tt.loc)
		if quiet != tt.quiet {
			t.Errorf("%v at %s: quiet = %v", tt.q, tt.now, quiet)
			continue
		}
		if tt.quiet && !until.Equal(at(tt.until)) {
			t.Errorf("%v at %s: until = %v, want %s", tt.q, tt.now, until.In(paris), tt.until)
		}
	}
}

// FuzzNormalize feeds arbitrary subscriber JSON to the parser and the
// validator: neither may panic, a valid result must stay valid when
// normalised again, and errors never echo the webhook secret.
func FuzzNormalize(f *testing.F) {
	b, _ := encode(valid())
	f.Add(b)
	f.Add([]byte(`{"id":"m1","locale":"en","endpoints":[{"id":"a","channel":"sms","address":"+393471234567"}]}`))
	f.Add([]byte(`{"id":"m1","locale":"zz-ZZ-u-ca-x","timezone":"X/Y","endpoints":[{"id":"a","channel":"webhook","url":"https://[::1]/","secret":"whsec_AAAA"}]}`))
	f.Add([]byte(`{"id":"m1","endpoints":[{"quiet_hours":{"start":"24:00","end":"7:0"}}]}`))
	rules := testRules(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseJSON(data)
		if err != nil {
			return
		}
		if err := rules.Normalize(s); err != nil {
			for _, ep := range s.Endpoints {
				if sec := ep.Secret.Reveal(); len(sec) > 12 && strings.Contains(err.Error(), sec) {
					t.Fatalf("error echoes a secret: %v", err)
				}
			}
			return
		}
		again := s.Clone()
		if err := rules.Normalize(again); err != nil {
			t.Fatalf("normalised subscriber no longer valid: %v", err)
		}
		a, _ := encode(s)
		b, _ := encode(again)
		if string(a) != string(b) {
			t.Fatalf("Normalize is not idempotent:\n%s\n%s", a, b)
		}
	})
}

// TestWebhookURLHook: a URL the rules' WebhookURL check refuses is a field
// error with the check's message; one it accepts passes.
func TestWebhookURLHook(t *testing.T) {
	rules := testRules(t)
	rules.WebhookURL = func(raw string) error {
		if strings.Contains(raw, "internal") {
			return errors.New("address not allowed")
		}
		return nil
	}
	s := valid()
	s.Endpoints[3].URL = "https://internal.example/h"
	var fe FieldErrors
	if err := rules.Normalize(s); !errors.As(err, &fe) || len(fe) != 1 || fe[0].Field != "endpoints[3].url" || fe[0].Message != "is refused: address not allowed" {
		t.Fatalf("Normalize = %v, want endpoints[3].url refused", err)
	}
	if err := rules.Normalize(valid()); err != nil {
		t.Fatalf("Normalize(valid) = %v", err)
	}
}
