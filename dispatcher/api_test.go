package dispatcher

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/secret"
)

const adminToken = "test-admin-token-0123456789"

type apiClient struct {
	t   *testing.T
	srv *httptest.Server
}

func (b *testBundle) api() *apiClient {
	srv := httptest.NewServer(b.d.Handler(APIOptions{AdminToken: secret.Value(adminToken)}))
	b.t.Cleanup(srv.Close)
	return &apiClient{t: b.t, srv: srv}
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (c *apiClient) do(method, path, token, body string, out any) int {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

type apiError struct {
	Error  string         `json:"error"`
	Fields []fieldProblem `json:"fields"`
}

func TestAPIRequiresToken(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	c := b.api()
	for _, route := range []string{"POST /v1/incidents", "GET /v1/subscribers", "PUT /v1/subscribers/x", "GET /v1/deliveries?subscriber=x", "GET /v1/deadletters"} {
		method, path, _ := strings.Cut(route, " ")
		for _, tok := range []string{"", "wrong", adminToken + "x"} {
			if code := c.do(method, path, tok, "{}", nil); code != http.StatusUnauthorized {
				t.Errorf("%s with token %q: %d, want 401", route, tok, code)
			}
		}
	}
	if code := c.do("GET", "/healthz", "", "", nil); code != 200 {
		t.Errorf("healthz: %d", code)
	}
}

func TestAPIPublish(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{cfg: func(c *Config) { c.MaxEventBytes = 2048 }})
	b.putSubscriber(b.webhookSubscriber("m1", "/m1"))
	c := b.api()
	var res PublishResult
	if code := c.do("POST", "/v1/incidents", adminToken, event("API-1", 1, "investigating"), &res); code != http.StatusAccepted {
		t.Fatalf("publish: %d", code)
	}
	if res.ID != "API-1:1" || res.StreamSeq == 0 || res.Duplicate {
		t.Fatalf("result %+v", res)
	}
	if code := c.do("POST", "/v1/incidents", adminToken, event("API-1", 1, "investigating"), &res); code != http.StatusAccepted || !res.Duplicate {
		t.Fatalf("republish: %d %+v", code, res)
	}
	b.waitFor("delivery", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })

	var e apiError
	if code := c.do("POST", "/v1/incidents", adminToken, event("API-1", 2, "fixed"), &e); code != http.StatusBadRequest {
		t.Fatalf("bad status: %d", code)
	}
	if len(e.Fields) != 1 || e.Fields[0].Field != "status" || !strings.Contains(e.Fields[0].Message, "must be one of") {
		t.Fatalf("error %+v", e)
	}
	if code := c.do("POST", "/v1/incidents", adminToken, `{"id":`, &e); code != http.StatusBadRequest {
		t.Fatalf("bad JSON: %d", code)
	}
	big := event("API-1", 3, "investigating", "body", `"`+strings.Repeat("x", 4000)+`"`)
	if code := c.do("POST", "/v1/incidents", adminToken, big, &e); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", code)
	}
	var snap Snapshot
	if code := c.do("GET", "/v1/incidents/API-1", adminToken, "", &snap); code != 200 || snap.LatestSeq != 1 {
		t.Fatalf("snapshot: %d %+v", code, snap)
	}
	if code := c.do("GET", "/v1/incidents/NOPE", adminToken, "", nil); code != 404 {
		t.Fatalf("unknown incident: %d", code)
	}
}

func TestAPISubscribers(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	c := b.api()
	sub := func(id string) string {
		return fmt.Sprintf(`{"id":%q,"name":"Boulangerie","locale":"fr-FR","timezone":"Europe/Paris","components":["oney"],
"endpoints":[{"id":"e1","channel":"email","address":"ops@dupont.example"},{"id":"e4","channel":"webhook","url":%q,"secret":%q}]}`,
			id, b.recv.url("/"+id), testSecret)
	}
	var got map[string]any
	if code := c.do("PUT", "/v1/subscribers/m_1", adminToken, sub("m_1"), &got); code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, got)
	}
	raw, _ := json.Marshal(got)
	if strings.Contains(string(raw), "MfKQ9r8G") {
		t.Fatalf("the API returned the webhook secret: %s", raw)
	}
	if code := c.do("PUT", "/v1/subscribers/m_1", adminToken, sub("m_1"), nil); code != http.StatusOK {
		t.Fatalf("replace: %d", code)
	}
	var e apiError
	bad := strings.Replace(sub("m_2"), `"components":["oney"]`, `"components":["unknown-thing"]`, 1)
	if code := c.do("PUT", "/v1/subscribers/m_2", adminToken, bad, &e); code != http.StatusBadRequest || len(e.Fields) == 0 || e.Fields[0].Field != "components[0]" {
		t.Fatalf("unknown component: %d %+v", code, e)
	}
	if code := c.do("PUT", "/v1/subscribers/m_3", adminToken, sub("m_4"), &e); code != http.StatusBadRequest || e.Fields[0].Field != "id" {
		t.Fatalf("id mismatch: %d %+v", code, e)
	}
	if code := c.do("PUT", "/v1/subscribers/m_3", adminToken, `{"id":"m_3","colour":1}`, &e); code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", code)
	}
	for i := range 5 {
		id := fmt.Sprintf("p_%d", i)
		if code := c.do("PUT", "/v1/subscribers/"+id, adminToken, sub(id), nil); code != http.StatusCreated {
			t.Fatalf("create %s: %d", id, code)
		}
	}
	b.waitFor("index", 5*time.Second, func() bool { return b.d.index.Len() == 6 })
	var ids []string
	after := ""
	for {
		var page struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			Next string `json:"next"`
		}
		if code := c.do("GET", "/v1/subscribers?limit=4&after="+url.QueryEscape(after), adminToken, "", &page); code != 200 {
			t.Fatalf("list: %d", code)
		}
		for _, it := range page.Items {
			ids = append(ids, it.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if got := strings.Join(ids, ","); got != "m_1,p_0,p_1,p_2,p_3,p_4" {
		t.Fatalf("paged list %s", got)
	}
	if code := c.do("DELETE", "/v1/subscribers/p_0", adminToken, "", nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code := c.do("DELETE", "/v1/subscribers/p_0", adminToken, "", nil); code != http.StatusNotFound {
		t.Fatalf("delete again: %d", code)
	}
	if code := c.do("GET", "/v1/subscribers/p_0", adminToken, "", nil); code != http.StatusNotFound {
		t.Fatalf("get deleted: %d", code)
	}

	// The delivery log of a subscriber, through the API.
	b.publish(event("API-2", 1, "investigating"))
	b.waitFor("delivery", 10*time.Second, func() bool { return b.recv.delivered("/m_1") == 1 })
	var log struct {
		Items []Record `json:"items"`
	}
	b.waitFor("log", 5*time.Second, func() bool {
		c.do("GET", "/v1/deliveries?subscriber=m_1", adminToken, "", &log)
		return len(log.Items) == 2 // webhook delivered, email to the outbox
	})
	for _, r := range log.Items {
		if r.SubscriberID != "m_1" || (r.Outcome != Delivered && r.Outcome != Outboxed) {
			t.Errorf("record %+v", r)
		}
	}
	if code := c.do("GET", "/v1/deliveries", adminToken, "", nil); code != http.StatusBadRequest {
		t.Fatalf("deliveries without subscriber: %d", code)
	}
}
