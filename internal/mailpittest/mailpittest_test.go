package mailpittest

import (
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// TestRoundTrip sends a message with net/smtp and reads it back through
// every helper: list, search, message, headers, raw, count, delete.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	mp := Start(t, Options{})
	if mp.Total(t) != 0 {
		t.Fatal("a fresh Mailpit holds messages")
	}
	raw := "From: Herald <status@herald.example>\r\n" +
		"To: Trattoria <ops@trattoria.example>\r\n" +
		"Subject: =?UTF-8?q?Perch=C3=A9_gi=C3=A0?=\r\n" +
		"Message-ID: <dlv_test@herald.example>\r\n" +
		"Date: Mon, 05 May 2025 09:00:00 +0200\r\n" +
		"List-Unsubscribe: <https://herald.example/unsubscribe/abc>\r\n" +
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=UTF-8\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n" +
		"\r\n" +
		"Il finanziamento =C3=A8 stato approvato.\r\n"
	for _, to := range []string{"ops@trattoria.example", "other@dupont.example"} {
		if err := smtp.SendMail(mp.SMTPAddr(), nil, "status@herald.example", []string{to}, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if n := mp.WaitTotal(t, 2, 10*time.Second); n != 2 {
		t.Fatalf("Mailpit holds %d messages, want 2", n)
	}
	if all := mp.Messages(t); len(all) != 2 {
		t.Fatalf("Messages: %d, want 2", len(all))
	}
	// A search for nobody finds nothing; one on the decoded subject finds
	// both.
	if got := mp.Search(t, "to:nobody@nowhere.example"); len(got) != 0 {
		t.Fatalf("search for nobody: %+v", got)
	}
	found := mp.Search(t, "subject:Perché")
	if len(found) != 2 {
		t.Fatalf("search by subject found %d, want 2", len(found))
	}
	m := mp.Message(t, found[0].ID)
	if m.Subject != "Perché già" || m.MessageID != "dlv_test@herald.example" ||
		strings.TrimSpace(m.Text) != "Il finanziamento è stato approvato." || m.From.Address != "status@herald.example" {
		t.Errorf("message %+v", m)
	}
	if len(m.ListUnsubscribe.Links) != 1 || m.ListUnsubscribe.HeaderPost != "List-Unsubscribe=One-Click" {
		t.Errorf("List-Unsubscribe as Mailpit reads it: %+v", m.ListUnsubscribe)
	}
	h := mp.Headers(t, m.ID)
	if v, ok := h.Get("list-unsubscribe-post"); !ok || v != "List-Unsubscribe=One-Click" {
		t.Errorf("header lookup: %q %v", v, ok)
	}
	if _, ok := h.Get("X-Absent"); ok {
		t.Error("an absent header was found")
	}
	if r := mp.Raw(t, m.ID); !strings.Contains(string(r), "=C3=A8 stato") {
		t.Errorf("raw message is not as sent: %q", r)
	}
	mp.DeleteAll(t)
	if n := mp.Total(t); n != 0 {
		t.Fatalf("%d messages after DeleteAll", n)
	}
	mp.Stop()
	if _, err := mp.Count(); err == nil {
		t.Fatal("Mailpit still answers after Stop")
	}
}
