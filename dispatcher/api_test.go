package dispatcher

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestUnsubscribeOneClick(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	srv := b.servePublic(nil)
	sub := b.webhookSubscriber("m1", "/m1")
	b.putSubscriber(sub)
	tok := b.d.links.seal("m1", "wh")
	req, _ := http.NewRequest("GET", srv.URL+"/unsubscribe/"+tok, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `method="post"`) {
		t.Fatalf("confirmation page: %d %s", resp.StatusCode, page)
	}
	for range 2 { // idempotent
		resp, err := http.Post(srv.URL+"/unsubscribe/"+tok, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("one-click: %d", resp.StatusCode)
		}
	}
	s, _, err := b.d.store.Get(b.ctx, "m1")
	if err != nil || s.Endpoint("wh").Disabled == nil || s.Endpoint("wh").Disabled.Reason != "unsubscribed" {
		t.Fatalf("endpoint not disabled: %+v %v", s, err)
	}
	resp, _ = http.Post(srv.URL+"/unsubscribe/"+tok[:len(tok)-2]+"xx", "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("forged token: %d", resp.StatusCode)
	}
}
