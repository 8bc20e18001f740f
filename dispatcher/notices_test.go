package dispatcher

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/subscribers"
)

// TestSendNotice: a notice addressed directly goes to its own address
// (the endpoint is pending, so no update would), through the channel, and
// is recorded under its delivery id; bad notices are refused.
func TestSendNotice(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	now := time.Now().UTC()
	b.putSubscriber(&subscribers.Subscriber{ID: "s_new", Locale: "it", Endpoints: []subscribers.Endpoint{
		{ID: "mail", Channel: "email", Address: "stored@shop.example", Pending: &subscribers.Pending{Since: now}}}})
	link := "https://herald.example/confirm/abc"
	id, err := b.d.SendNotice(b.ctx, KindConfirm, "s_new", "mail", Direct{Address: "given@shop.example", Locale: "it", Link: link, Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	b.waitFor("the notice", 10*time.Second, func() bool { return b.lastOutcome("s_new", id) == Outboxed })
	var found string
	_ = filepath.Walk(b.outbox, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if data, _ := os.ReadFile(p); strings.Contains(string(data), "given@shop.example") {
				found = string(data)
			}
		}
		return nil
	})
	if found == "" || !strings.Contains(found, link) || strings.Contains(found, "stored@shop.example") {
		t.Fatalf("the notice did not go to its own address with its link:\n%s", found)
	}
	if strings.Contains(found, "List-Unsubscribe") {
		t.Fatal("a confirmation carries an unsubscribe link")
	}
	for _, tc := range []struct {
		kind string
		n    Direct
	}{
		{"nope", Direct{Address: "a@b.example", Link: link}},
		{KindConfirm, Direct{Address: "a@b.example"}},
		{KindCode, Direct{Address: "+33612345678"}},
		{KindConfirm, Direct{Link: link}},
	} {
		if _, err := b.d.SendNotice(b.ctx, tc.kind, "s_new", "mail", tc.n); !errors.Is(err, ErrBadNotice) {
			t.Errorf("SendNotice(%s, %+v) = %v", tc.kind, tc.n, err)
		}
	}
	if _, err := decodeJob([]byte(`{"id":"dlv_x","kind":"address.confirm","event":"e","sub":"s","ep":"e","ch":"email"}`)); err == nil {
		t.Fatal("a notice job without its recipient decoded")
	}
}
