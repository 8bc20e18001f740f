package slack

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/channels"
)

func TestParseAnswer(t *testing.T) {
	t.Parallel()
	secrets := []string{hookToken, botToken}
	for _, tc := range []struct {
		name, body    string
		truncated     bool
		code, summary string
	}{
		{"bare code", "no_service", false, "no_service", ""},
		{"code with a newline", "channel_is_archived\n", false, "channel_is_archived", ""},
		{"Web API JSON", `{"ok":false,"error":"channel_not_found","warning":"x"}`, false, "channel_not_found", ""},
		{"JSON without a code", `{"ok":false,"error":"Bad Thing!"}`, false, "", `{"ok":false,"error":"Bad Thing!"}`},
		{"truncated JSON", `{"ok":false,"error":"channel_not_found"`, true, "", `{"ok":false,"error":"channel_not_found"`},
		{"upper case", "NO_SERVICE", false, "", "NO_SERVICE"},
		{"HTML", "<html>\n<body>Bad gateway</body></html>", false, "", "<html> <body>Bad gateway</body></html>"},
		{"echoed token", "invalid_token " + hookToken, false, "", "invalid_token [redacted]"},
		{"echoed bot token", `{"error":"bad ` + botToken + `"}`, false, "", `{"error":"bad [redacted]"}`},
		{"token cut at the limit", "invalid_token " + hookToken[:10], true, "", "invalid_token"},
		{"control characters", "a\x1b[31mb\x00c", false, "", "a [31mb c"},
		{"empty", "", false, "", ""},
		{"too long for a code", strings.Repeat("a", 65), false, "", strings.Repeat("a", 65)},
	} {
		code, summary := parseAnswer([]byte(tc.body), tc.truncated, secrets)
		if code != tc.code || summary != tc.summary {
			t.Errorf("%s: parseAnswer = %q, %q; want %q, %q", tc.name, code, summary, tc.code, tc.summary)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 5, 3, 14, 11, 0, 0, time.UTC)
	ra := func(v string) http.Header { return http.Header{"Retry-After": []string{v}} }
	disable := channels.Classification{Permanent: true, Action: channels.DisableEndpoint}
	permanent := channels.Classification{Permanent: true}
	for _, tc := range []struct {
		status  int
		header  http.Header
		code    string
		webhook bool
		want    channels.Classification
	}{
		{429, ra("3"), "", false, channels.Classification{After: 3 * time.Second}},
		{429, ra(now.Add(time.Minute).Format(http.TimeFormat)), "", true, channels.Classification{After: time.Minute}},
		{200, ra("9"), "ratelimited", false, channels.Classification{After: 9 * time.Second}},
		{200, nil, "rate_limited", false, channels.Classification{}},
		{500, nil, "", false, channels.Classification{}},
		{502, nil, "channel_not_found", true, channels.Classification{}},
		{200, nil, "fatal_error", false, channels.Classification{}},
		{200, nil, "channel_not_found", false, disable},
		{200, nil, "not_in_channel", false, disable},
		{200, nil, "is_archived", false, disable},
		{200, nil, "invalid_auth", false, disable},
		{200, nil, "account_inactive", false, disable},
		{200, nil, "token_revoked", false, disable},
		{404, nil, "", true, disable},
		{410, nil, "", true, disable},
		{404, nil, "", false, permanent},
		{410, nil, "", false, permanent},
		{404, nil, "no_service", true, disable},
		{410, nil, "channel_is_archived", true, disable},
		{403, nil, "invalid_token", true, disable},
		{400, nil, "invalid_payload", true, permanent},
		{403, nil, "action_prohibited", true, permanent},
		{200, nil, "msg_too_long", false, permanent},
		{302, nil, "", true, permanent},
		{200, nil, "something_new", false, permanent},
	} {
		err := classify(tc.status, tc.header, tc.code, "", tc.webhook, now)
		if got := channels.Classify(err); got != tc.want {
			t.Errorf("%d %q webhook=%v: %+v, want %+v (%v)", tc.status, tc.code, tc.webhook, got, tc.want, err)
		}
		var pe *channels.ProviderError
		if !errors.As(err, &pe) || pe.Code != tc.code || pe.Status != tc.status {
			t.Errorf("%d %q: err = %v, want a ProviderError with them", tc.status, tc.code, err)
		}
	}
}

func TestIsChannelID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"C0123ABCD": true, "G01ABCDEF": true, "D024BE91L": true, "C0123456789ABCDEF": true,
		"": false, "C012": false, "c0123abcd": false, "U0123ABCD": false, "#general": false,
		"C0123abcd": false, "C0123-ABC": false, "https://hooks.slack.com/services/T/B/x": false,
	} {
		if got := IsChannelID(s); got != want {
			t.Errorf("IsChannelID(%q) = %v", s, got)
		}
	}
}

// FuzzParseAnswer: whatever Slack or a hostile receiver answers, what
// Herald keeps is a well-formed code or a short, printable, one-line,
// secret-free summary, and its classification is sound.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		"no_service", "ok", `{"ok":false,"error":"channel_not_found"}`, `{"error":123}`, `{"error":"` + hookToken + `"}`,
		"<html>\x00\x1b[2J</html>", "invalid_token " + hookToken, "\xff\xfe", strings.Repeat("é ", 300), "",
	} {
		f.Add([]byte(s), false, 404)
		f.Add([]byte(s), true, 200)
	}
	secrets := []string{hookToken, botToken}
	f.Fuzz(func(t *testing.T, body []byte, truncated bool, status int) {
		code, summary := parseAnswer(body, truncated, secrets)
		if code != "" && (!isCode([]byte(code)) || summary != "") {
			t.Fatalf("code %q, summary %q", code, summary)
		}
		if !utf8.ValidString(summary) || utf8.RuneCountInString(summary) > summaryRunes+1 {
			t.Fatalf("summary %q", summary)
		}
		if strings.IndexFunc(summary, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) >= 0 ||
			strings.HasPrefix(summary, " ") || strings.HasSuffix(summary, " ") || strings.Contains(summary, "  ") {
			t.Fatalf("summary %q is not one clean line", summary)
		}
		for _, s := range secrets {
			if strings.Contains(summary, s) {
				t.Fatalf("summary %q holds a secret", summary)
			}
		}
		err := classify(status, nil, code, summary, true, time.Now())
		if err == nil {
			t.Fatal("a refusal classified as a delivery")
		}
		c := channels.Classify(err)
		if (status == 429 || status >= 500) && c.Permanent {
			t.Fatalf("status %d code %q classified permanent", status, code)
		}
		if msg := err.Error(); len(msg) > 1024 || strings.ContainsFunc(msg, unicode.IsControl) {
			t.Fatalf("error %q", msg)
		}
	})
}

// FuzzParseHook: whatever address a subscriber gives, parsing never
// panics, an accepted URL is https on a Slack host, and errors never quote
// the address's path.
func FuzzParseHook(f *testing.F) {
	for _, s := range []string{
		"https://hooks.slack.com/services/T0/B0/" + hookToken, "http://hooks.slack.com/x", "https://u:p@hooks.slack.com/x",
		"https://hooks.slack.com.evil/x", "https://HOOKS.SLACK.COM/services/x", "https://hooks.slack.com:0/x", "%", "https://[::1]/x",
		"https://hooks.slack.com/services/%2F..%2F/" + hookToken + "#frag",
	} {
		f.Add(s)
	}
	hosts := DefaultWebhookHosts()
	f.Fuzz(func(t *testing.T, raw string) {
		h, err := parseHook(raw, hosts, false)
		if err != nil {
			if !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(raw, hookToken) && strings.Contains(err.Error(), hookToken) {
				t.Fatalf("error %q quotes the address", err)
			}
			return
		}
		if h.u.Scheme != "https" || (!strings.EqualFold(h.u.Hostname(), "hooks.slack.com") && !strings.EqualFold(h.u.Hostname(), "hooks.slack-gov.com")) || h.u.User != nil {
			t.Fatalf("accepted %q", raw)
		}
		if strings.Contains(h.masked, hookToken) || strings.Contains(h.host, "/") {
			t.Fatalf("masked %q, host %q", h.masked, h.host)
		}
	})
}

// FuzzDecodeThread: a stored record that does not decode is an error, never
// a panic.
func FuzzDecodeThread(f *testing.F) {
	f.Add([]byte(`{"incident_id":"TSR-1610","channel_id":"C0123ABCD","parent_ts":"1.1","sequence":3,"posted":{"d":"1.2"}}`))
	f.Add([]byte(`{"posted":null,"lease_until":"not a time"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		th, err := decodeThread(b)
		if err != nil && !errors.Is(err, ErrCorruptThread) {
			t.Fatalf("err = %v", err)
		}
		_ = th.clone()
	})
}

// FuzzCheckMessage: any rendered message is accepted or refused with
// ErrInvalidMessage; an accepted one decodes for the Web API or is refused
// the same way.
func FuzzCheckMessage(f *testing.F) {
	f.Add([]byte(`{"text":"a","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"x"}}]}`))
	f.Add([]byte(`{"blocks":[{"type":"context","elements":[{"type":"image"}]}]}`))
	f.Add([]byte(`{"blocks":[{"type":"header","text":null}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := checkMessage("body", b); err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("err = %v", err)
			}
			return
		}
		if _, err := decodeMessage("body", b); err != nil && !errors.Is(err, ErrInvalidMessage) {
			t.Fatalf("decode: %v", err)
		}
	})
}
