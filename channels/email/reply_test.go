package email

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/channels"
)

func TestNewReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code     int
		text     string
		enhanced string
		want     string
	}{
		{550, "5.1.1 <x@dupont.example>: Recipient address rejected: User unknown", "5.1.1", "<x@dupont.example>: Recipient address rejected: User unknown"},
		{250, "2.0.0 Ok: queued as 4BB8B3F5C2", "2.0.0", "Ok: queued as 4BB8B3F5C2"},
		{550, "No such user here", "", "No such user here"},
		{451, "4.7.1", "4.7.1", ""},
		{550, "5.1.10 Recipient address has null MX", "5.1.10", "Recipient address has null MX"},
		{552, "5.123.456 x", "5.123.456", "x"},
		{550, "5.1234.1 too many digits", "", "5.1234.1 too many digits"},
		{550, "5.1.1x glued", "", "5.1.1x glued"},
		{550, "4.1.1 class differs from the code", "", "4.1.1 class differs from the code"},
		{550, "3.1.1 no such class", "", "3.1.1 no such class"},
		{550, "5..1 empty subject", "", "5..1 empty subject"},
		{550, "5.01.1 leading zero", "", "5.01.1 leading zero"},
		{550, "5.1. empty detail", "", "5.1. empty detail"},
		{550, "5.1", "", "5.1"},
		{550, "", "", ""},
		// Gmail repeats the enhanced code on every line.
		{550, "5.1.1 The email account that you tried to reach does not exist. Please try\n5.1.1 double-checking the recipient's email address.\n5.1.1  https://support.google.com/mail/?p=NoSuchUser",
			"5.1.1", "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address. https://support.google.com/mail/?p=NoSuchUser"},
		{554, "5.7.1 a\n5.7.2 b", "5.7.1", "a 5.7.2 b"},
		{550, "5.7.1 bell\x07 escape\x1b[31m nul\x00 tab\t bidi\u202e end", "5.7.1", "bell escape [31m nul tab bidi end"},
		{550, "5.7.1 \xff\xfe invalid", "5.7.1", "invalid"},
	} {
		r := newReply(tc.code, tc.text)
		if r.Code != tc.code || r.Enhanced.String() != tc.enhanced || r.Text != tc.want {
			t.Errorf("newReply(%d, %q) = %d %q %q, want %q %q", tc.code, tc.text, r.Code, r.Enhanced, r.Text, tc.enhanced, tc.want)
		}
	}
	long := newReply(550, "5.7.1 "+strings.Repeat("é", 1000))
	if len(long.Text) > maxReplyText+len("…") || !strings.HasSuffix(long.Text, "…") || !utf8.ValidString(long.Text) {
		t.Errorf("long reply summarised to %d bytes: %q", len(long.Text), long.Text)
	}
}

func TestQueueID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ text, want string }{
		{"Ok: queued as 4BB8B3F5C2", "4BB8B3F5C2"},
		{"Ok: queued as d4f6YpWbXp9gSJa8Lz3Zr2", "d4f6YpWbXp9gSJa8Lz3Zr2"},
		{"OK id=1tXw2v-0004Zq-Ab", "1tXw2v-0004Zq-Ab"},
		{"x8FGi3xX012345 Message accepted for delivery", "x8FGi3xX012345"},
		{"<DB8PR01MB1234.eurprd01.prod.exchangelabs.com> [InternalId=1234567890, Hostname=DB8PR01MB1234] Queued mail for delivery", "1234567890"},
		{"OK  1715000000 a640c23a62f3a-a9a3c5f8a5csi12345.123 - gsmtp", "a640c23a62f3a-a9a3c5f8a5csi12345.123"},
		{"Ok 0100018f5b6e7c1d-2c4a3b1e-9f0a-4b7e-8d2c-1a2b3c4d5e6f-000000", "0100018f5b6e7c1d-2c4a3b1e-9f0a-4b7e-8d2c-1a2b3c4d5e6f-000000"},
		{"OK: queued", ""},
		{"Ok", ""},
		{"", ""},
		{"Ok short", ""},
		{"queued as ", ""},
		{"queued as <ABC123>.", "ABC123"},
		{"queued as " + strings.Repeat("A", 129), ""},
		{"Thanks, message accepted", ""},
		{"valid id=x", "x"},
		{"rapid=x", ""},
	} {
		if got := queueID(tc.text); got != tc.want {
			t.Errorf("queueID(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	retry := channels.Classification{}
	permanent := channels.Classification{Permanent: true}
	suppress := channels.Classification{Permanent: true, Action: channels.SuppressAddress}
	for _, tc := range []struct {
		st   stage
		code int
		text string
		want channels.Classification
	}{
		{stageRcpt, 421, "4.7.0 closing", retry},
		{stageRcpt, 450, "4.2.1 busy", retry},
		{stageRcpt, 451, "4.7.1 greylisted", retry},
		{stageEnd, 452, "4.3.1 insufficient storage", retry},
		{stageRcpt, 550, "5.1.1 user unknown", suppress},
		{stageRcpt, 550, "5.1.2 no such domain", suppress},
		{stageRcpt, 553, "5.1.3 bad syntax", suppress},
		{stageRcpt, 550, "5.1.6 moved", suppress},
		{stageRcpt, 550, "5.1.10 null MX", suppress},
		{stageData, 554, "5.1.1 no valid recipients", suppress},
		{stageEnd, 550, "5.1.1 user unknown", suppress},
		{stageMail, 550, "5.1.1 sender unknown", permanent},
		{stageRcpt, 550, "5.1.0 sender rejected", permanent},
		{stageRcpt, 550, "5.1.4 ambiguous", permanent},
		{stageRcpt, 553, "5.1.7 bad sender syntax", permanent},
		{stageRcpt, 550, "5.1.8 bad sender domain", permanent},
		{stageRcpt, 550, "5.7.1 policy", permanent},
		{stageEnd, 554, "5.7.1 spam", permanent},
		{stageRcpt, 550, "user unknown", permanent},
		{stageRcpt, 550, "4.1.1 class mismatch", permanent},
		{stageRcpt, 552, "5.2.2 mailbox full", retry},
		{stageEnd, 552, "5.2.2 mailbox full", retry},
		{stageRcpt, 552, "mailbox full", retry},
		{stageEnd, 552, "message too big", permanent},
		{stageEnd, 552, "5.3.4 message too big", permanent},
		{stageRcpt, 554, "", permanent},
		{stageConnect, 535, "5.7.8 authentication failed", retry},
		{stageConnect, 554, "5.7.1 no service for you", retry},
		{stageConnect, 530, "5.7.0 must issue STARTTLS", retry},
		{stageMail, 354, "unexpected", retry},
		{stageEnd, 999, "nonsense", retry},
	} {
		err := outcome(tc.st, newReply(tc.code, tc.text))
		if got := channels.Classify(err); got != tc.want {
			t.Errorf("%s %d %q: %+v, want %+v (%v)", tc.st, tc.code, tc.text, got, tc.want, err)
		}
	}
}

// FuzzNewReply reads arbitrary server replies: the summary is one line of
// printable text, bounded; the enhanced code, when found, has the class of
// the reply and appears in the text given.
func FuzzNewReply(f *testing.F) {
	for _, s := range []string{
		"5.1.1 User unknown", "2.0.0 Ok: queued as 4BB8B3F5C2", "4.7.1\n4.7.1 Greylisted",
		"5.7.1 \x1b[31m\x00", "", "5.1.1", "5.999.999 x", "\xff\xfe", "5.1.1 a\n5.1.1 b\n5.1.1 c",
	} {
		f.Add(550, s)
		f.Add(250, s)
	}
	f.Fuzz(func(t *testing.T, code int, text string) {
		r := newReply(code, text)
		if r.Code != code {
			t.Fatalf("code %d became %d", code, r.Code)
		}
		if len(r.Text) > maxReplyText+len("…") || !utf8.ValidString(r.Text) {
			t.Fatalf("summary of %d bytes, valid %v", len(r.Text), utf8.ValidString(r.Text))
		}
		if i := strings.IndexFunc(r.Text, func(c rune) bool { return unicode.IsControl(c) || unicode.Is(unicode.Cf, c) }); i >= 0 {
			t.Fatalf("control character in %q", r.Text)
		}
		if r.Text != strings.TrimSpace(r.Text) || strings.Contains(r.Text, "  ") {
			t.Fatalf("untidy spaces in %q", r.Text)
		}
		if !r.Enhanced.IsZero() {
			if r.Enhanced.Class != code/100 || !strings.HasPrefix(text, r.Enhanced.String()) {
				t.Fatalf("enhanced code %s read from %d %q", r.Enhanced, code, text)
			}
		}
		// Classifying never panics and never lets a 2xx through as nil.
		if err := outcome(stageRcpt, r); err == nil {
			t.Fatal("outcome returned nil")
		}
	})
}

// FuzzQueueID reads arbitrary 250 texts: an id found is short, made of id
// bytes, and taken from the text.
func FuzzQueueID(f *testing.F) {
	for _, s := range []string{
		"Ok: queued as 4BB8B3F5C2", "OK id=1tXw2v-0004Zq-Ab", "x8FGi3xX012345 Message accepted for delivery",
		"[InternalId=12, Hostname=x]", "OK 1 a-b.c - gsmtp", "Ok 0100018f5b6e7c1d", "queued as <", "id=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		id := queueID(text)
		if id == "" {
			return
		}
		if len(id) > 128 || !strings.Contains(text, id) {
			t.Fatalf("queueID(%q) = %q", text, id)
		}
		for i := 0; i < len(id); i++ {
			if !isIDByte(id[i]) {
				t.Fatalf("queueID(%q) = %q holds %q", text, id, id[i])
			}
		}
	})
}

func FuzzHeaderKeys(f *testing.F) {
	f.Add("List-Unsubscribe", "<https://herald.example/u/abc>")
	f.Add("X-A", "a\r\nBcc: x@example.com")
	f.Add("bcc", "x")
	f.Add("X:Y", "z")
	f.Fuzz(func(t *testing.T, name, value string) {
		keys, err := headerKeys(map[string]string{name: value})
		if err != nil {
			return
		}
		if strings.ContainsAny(value, "\r\n\x00") || len(value) > maxHeaderValue || !validFieldName(name) || reservedHeaders[strings.ToLower(name)] {
			t.Fatalf("accepted %q: %q", name, value)
		}
		if len(keys) != 1 || !strings.EqualFold(keys[0].name, name) {
			t.Fatalf("keys %+v for %q", keys, name)
		}
	})
}
