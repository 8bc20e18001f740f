package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/secret"
)

type apiError struct {
	Error    string               `json:"error"`
	Fields   incident.FieldErrors `json:"fields"`
	Missing  []string             `json:"missing_locales"`
	Coverage *dispatcher.Coverage `json:"coverage"`
	Priority incident.Priority    `json:"priority"`
	Limit    int                  `json:"limit"`
}

// routes returns the admin routes of a server built like the bundle's.
func (b *testBundle) routes() []string {
	s, err := New(b.d, Config{AdminToken: secret.Value(adminToken), Gatherer: b.gatherer()})
	if err != nil {
		b.t.Fatal(err)
	}
	return s.Routes()
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	for name, cfg := range map[string]Config{
		"no token":             {},
		"unknown priority":     {AdminToken: "x", RequireLocales: dispatcher.RequiredLocales{"P9": {"fr"}}},
		"not a language tag":   {AdminToken: "x", RequireLocales: dispatcher.RequiredLocales{"P1": {"fr", "not a tag"}}},
		"empty language entry": {AdminToken: "x", RequireLocales: dispatcher.RequiredLocales{"P1": {""}}},
	} {
		if _, err := New(b.d, cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := New(nil, Config{AdminToken: "x"}); err == nil {
		t.Error("New accepted no engine")
	}
}

func TestAPIRequiresToken(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	for _, route := range b.routes() {
		method, path, _ := strings.Cut(route, " ")
		path = strings.NewReplacer("{id}", "x", "{seq}", "1", "{address}", "a@b.example").Replace(path)
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		for _, tok := range []string{"", "wrong", adminToken + "x", adminToken[:len(adminToken)-1]} {
			if code, _ := b.do(method, path, tok, "{}", nil); code != http.StatusUnauthorized {
				t.Errorf("%s with token %q: %d, want 401", route, tok, code)
			}
		}
	}
	// Basic credentials or a token without the scheme are refused too.
	req, _ := http.NewRequest("GET", b.srv.URL+"/v1/subscribers", nil)
	req.Header.Set("Authorization", adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("token without the Bearer scheme: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestAPIHealthMetricsAndSources(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	if code, _ := b.do("GET", "/healthz", "", "", nil); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
	// The engine is not running: not ready.
	if code, _ := b.do("GET", "/readyz", "", "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("readyz of a stopped engine: %d, want 503", code)
	}
	if code, body := b.do("GET", "/metrics", "", "", nil); code != http.StatusOK || !strings.Contains(string(body), "herald_") {
		t.Errorf("metrics: %d %.200s", code, body)
	}
	if code, _ := b.do("GET", "/v1/sources", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("sources without the token: %d, want 401", code)
	}
	var sources struct{ Sources []any }
	if code, _ := b.do("GET", "/v1/sources", adminToken, "", &sources); code != http.StatusOK || sources.Sources == nil {
		t.Errorf("sources: %d %+v", code, sources)
	}
	// The public pages are served elsewhere (package portal).
	if code, _ := b.do("GET", "/unsubscribe/not-a-token", "", "", nil); code != http.StatusNotFound {
		t.Errorf("unsubscribe page on the admin API: %d, want 404", code)
	}
}

func TestAPIReady(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	if code, _ := b.do("GET", "/readyz", "", "", nil); code != http.StatusOK {
		t.Errorf("readyz: %d", code)
	}
}

func TestAPIPublish(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{dispatcher: func(c *dispatcher.Config) { c.MaxEventBytes = 2048 }})
	b.putSubscriber(b.subscriber("m1", "fr-FR"))
	var res struct {
		dispatcher.PublishResult
		Coverage *dispatcher.Coverage `json:"coverage"`
	}
	if code, body := b.do("POST", "/v1/incidents", adminToken, event("API-1", 1, "investigating"), &res); code != http.StatusAccepted {
		t.Fatalf("publish: %d %s", code, body)
	}
	if res.ID != "API-1:1" || res.StreamSeq == 0 || res.Duplicate || res.Coverage == nil || res.Coverage.Subscribers != 1 {
		t.Fatalf("result %+v", res)
	}
	if code, _ := b.do("POST", "/v1/incidents", adminToken, event("API-1", 1, "investigating"), &res); code != http.StatusAccepted || !res.Duplicate {
		t.Fatalf("republish: %d %+v", code, res)
	}
	b.waitFor("the webhook", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })

	for _, tc := range []struct {
		name, body string
		code       int
		field      string
	}{
		{"bad status", event("API-1", 2, "fixed"), http.StatusBadRequest, "status"},
		{"bad JSON", `{"id":`, http.StatusBadRequest, "(event)"},
		{"oversized", event("API-1", 3, "investigating", "body", `"`+strings.Repeat("x", 4000)+`"`), http.StatusRequestEntityTooLarge, ""},
	} {
		var e apiError
		code, body := b.do("POST", "/v1/incidents", adminToken, tc.body, &e)
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.code)
			continue
		}
		if tc.field != "" && (len(e.Fields) == 0 || e.Fields[0].Field != tc.field) {
			t.Errorf("%s: fields %+v, want %s first", tc.name, e.Fields, tc.field)
		}
		if tc.code == http.StatusRequestEntityTooLarge && e.Limit != 2048 {
			t.Errorf("%s: limit %d in %s, want 2048", tc.name, e.Limit, body)
		}
	}
	var snap dispatcher.Snapshot
	if code, _ := b.do("GET", "/v1/incidents/API-1", adminToken, "", &snap); code != http.StatusOK || snap.LatestSeq != 1 {
		t.Fatalf("snapshot: %d %+v", code, snap)
	}
	if code, _ := b.do("GET", "/v1/incidents/NOPE", adminToken, "", nil); code != http.StatusNotFound {
		t.Fatalf("unknown incident: %d", code)
	}
	if code, _ := b.do("GET", "/v1/incidents/a.b", adminToken, "", nil); code != http.StatusBadRequest {
		t.Fatalf("bad incident id: %d", code)
	}
}

// TestAPIPublishCoverage: the answer to a publish says, per language of
// the update's audience, whether the update carries it and how many
// subscribers get a fallback, and in which language.
func TestAPIPublishCoverage(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	for id, locale := range map[string]string{"fr1": "fr-FR", "fr2": "fr-BE", "it1": "it-IT", "it2": "it-CH", "en1": "en-GB", "de1": "de-DE"} {
		b.putSubscriber(b.subscriber(id, locale))
	}
	var res struct {
		Coverage dispatcher.Coverage `json:"coverage"`
	}
	if code, body := b.do("POST", "/v1/incidents", adminToken, event("COV-1", 1, "investigating"), &res); code != http.StatusAccepted {
		t.Fatalf("publish: %d %s", code, body)
	}
	got, _ := json.Marshal(res.Coverage)
	want := `{"carried":["en","fr"],"subscribers":6,"fallback":3,"locales":[` +
		`{"locale":"fr","carried":true,"subscribers":2,"fallback":0},` +
		`{"locale":"it","carried":false,"subscribers":2,"fallback":2,"written_in":"en"},` +
		`{"locale":"de","carried":false,"subscribers":1,"fallback":1,"written_in":"en"},` +
		`{"locale":"en","carried":true,"subscribers":1,"fallback":0}]}`
	if string(got) != want {
		t.Errorf("coverage\n got %s\nwant %s", got, want)
	}
	// A follower of the incident is in its audience, as the fan-out
	// selects it; a follower of another incident is not.
	for id, followed := range map[string]string{"fol1": "COV-1", "fol2": "COV-9"} {
		doc := strings.Replace(b.subscriber(id, "it-IT"), `"endpoints"`, `"follow":{"incident_id":"`+followed+`"},"endpoints"`, 1)
		b.putSubscriber(doc)
	}
	if code, body := b.do("POST", "/v1/incidents", adminToken, event("COV-1", 2, "identified"), &res); code != http.StatusAccepted {
		t.Fatalf("publish: %d %s", code, body)
	}
	if res.Coverage.Subscribers != 7 || res.Coverage.Fallback != 4 || res.Coverage.Locales[0] != (dispatcher.LocaleCoverage{Locale: "it", Subscribers: 3, Fallback: 3, WrittenIn: "en"}) {
		t.Errorf("coverage with a follower of the incident: %+v", res.Coverage)
	}
}

// TestAPIRequireLocales: with require_locales, an update lacking one of its
// priority's languages is refused with 400 naming them (and nothing is
// published), unless allow_fallback=true; other priorities are not
// checked; unrated updates are checked as the unrated priority.
func TestAPIRequireLocales(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{
		api: func(c *Config) {
			c.RequireLocales = dispatcher.RequiredLocales{"P1": {"fr", "en", "it"}, "P3": {"fr", "de"}}
		},
	})
	b.putSubscriber(b.subscriber("it1", "it-IT"))
	var e apiError
	code, body := b.do("POST", "/v1/incidents", adminToken, event("REQ-1", 1, "investigating", "priority", "P1"), &e)
	if code != http.StatusBadRequest || strings.Join(e.Missing, ",") != "it" || !strings.Contains(e.Error, "it") ||
		e.Coverage == nil || e.Coverage.Fallback != 1 || e.Priority != "P1" {
		t.Fatalf("P1 without Italian: %d %s", code, body)
	}
	if code, _ := b.do("GET", "/v1/incidents/REQ-1", adminToken, "", nil); code != http.StatusNotFound {
		t.Fatalf("the refused update was stored: %d", code)
	}
	if code, body := b.do("POST", "/v1/incidents?allow_fallback=maybe", adminToken, event("REQ-1", 1, "investigating", "priority", "P1"), &e); code != http.StatusBadRequest || e.Fields[0].Field != "allow_fallback" {
		t.Fatalf("bad allow_fallback: %d %s", code, body)
	}
	if code, body := b.do("POST", "/v1/incidents?allow_fallback=true", adminToken, event("REQ-1", 1, "investigating", "priority", "P1"), nil); code != http.StatusAccepted {
		t.Fatalf("P1 with allow_fallback: %d %s", code, body)
	}
	b.waitFor("the webhook", 10*time.Second, func() bool { return b.recv.delivered("/it1") == 1 })
	// P2 requires nothing.
	if code, body := b.do("POST", "/v1/incidents", adminToken, event("REQ-2", 1, "investigating", "priority", "P2"), nil); code != http.StatusAccepted {
		t.Fatalf("P2: %d %s", code, body)
	}
	// An unrated update is a P3 update (the default unrated priority).
	e = apiError{}
	code, body = b.do("POST", "/v1/incidents", adminToken, event("REQ-3", 1, "investigating"), &e)
	if code != http.StatusBadRequest || strings.Join(e.Missing, ",") != "de" || e.Priority != "P3" || !strings.Contains(e.Error, "required for P3 updates") {
		t.Fatalf("unrated update: %d %s", code, body)
	}
	// All the languages carried: published.
	full := event("REQ-4", 1, "investigating", "priority", "P1",
		"title", `{"fr":"Panne","en":"Outage","it":"Guasto"}`, "body", `{"fr":"Texte.","en":"Text.","it":"Testo."}`)
	if code, body := b.do("POST", "/v1/incidents", adminToken, full, nil); code != http.StatusAccepted {
		t.Fatalf("P1 in every language: %d %s", code, body)
	}
}

func TestAPISubscribers(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	sub := func(id string) string {
		return fmt.Sprintf(`{"id":%q,"name":"Boulangerie","locale":"fr-FR","timezone":"Europe/Paris","components":["oney"],
"endpoints":[{"id":"e1","channel":"email","address":"ops@dupont.example"},{"id":"e4","channel":"webhook","url":%q,"secret":%q}]}`,
			id, b.recv.url("/"+id), testSecret)
	}
	var got map[string]any
	if code, _ := b.do("PUT", "/v1/subscribers/m_1", adminToken, sub("m_1"), &got); code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, got)
	}
	if raw, _ := json.Marshal(got); strings.Contains(string(raw), "MfKQ9r8G") {
		t.Fatalf("the API returned the webhook secret: %s", raw)
	}
	if code, _ := b.do("PUT", "/v1/subscribers/m_1", adminToken, sub("m_1"), nil); code != http.StatusOK {
		t.Fatalf("replace: %d", code)
	}
	var e apiError
	bad := strings.Replace(sub("m_2"), `"components":["oney"]`, `"components":["unknown-thing"]`, 1)
	if code, _ := b.do("PUT", "/v1/subscribers/m_2", adminToken, bad, &e); code != http.StatusBadRequest || len(e.Fields) == 0 || e.Fields[0].Field != "components[0]" {
		t.Fatalf("unknown component: %d %+v", code, e)
	}
	if code, _ := b.do("PUT", "/v1/subscribers/m_3", adminToken, sub("m_4"), &e); code != http.StatusBadRequest || e.Fields[0].Field != "id" {
		t.Fatalf("id mismatch: %d %+v", code, e)
	}
	if code, _ := b.do("PUT", "/v1/subscribers/m_3", adminToken, `{"id":"m_3","colour":1}`, &e); code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", code)
	}
	if code, _ := b.do("PUT", "/v1/subscribers/m_3", adminToken, `{"id":`, &e); code != http.StatusBadRequest {
		t.Fatalf("bad JSON: %d", code)
	}
	if code, _ := b.do("PUT", "/v1/subscribers/m_3", adminToken, `{"id":"m_3","name":"`+strings.Repeat("x", DefaultMaxSubscriberBytes)+`"}`, &e); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", code)
	}
	for i := range 5 {
		id := fmt.Sprintf("p_%d", i)
		if code, _ := b.do("PUT", "/v1/subscribers/"+id, adminToken, sub(id), nil); code != http.StatusCreated {
			t.Fatalf("create %s: %d", id, code)
		}
	}
	b.waitFor("the index", 5*time.Second, func() bool {
		page, err := b.d.ListSubscribers(b.ctx, "", 0)
		return err == nil && page.Total == 6
	})
	var ids []string
	after := ""
	for {
		var page struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			Total int    `json:"total"`
			Next  string `json:"next"`
		}
		if code, _ := b.do("GET", "/v1/subscribers?limit=4&after="+url.QueryEscape(after), adminToken, "", &page); code != http.StatusOK || page.Total != 6 {
			t.Fatalf("list: %d %+v", code, page)
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
	if code, _ := b.do("GET", "/v1/subscribers?limit=0", adminToken, "", &e); code != http.StatusBadRequest || e.Fields[0].Field != "limit" {
		t.Fatalf("limit 0: %d %+v", code, e)
	}
	if code, _ := b.do("GET", "/v1/subscribers/m_1", adminToken, "", &got); code != http.StatusOK || got["id"] != "m_1" {
		t.Fatalf("get: %d %v", code, got)
	}
	if code, _ := b.do("DELETE", "/v1/subscribers/p_0", adminToken, "", nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := b.do("DELETE", "/v1/subscribers/p_0", adminToken, "", nil); code != http.StatusNotFound {
		t.Fatalf("delete again: %d", code)
	}
	if code, _ := b.do("GET", "/v1/subscribers/p_0", adminToken, "", nil); code != http.StatusNotFound {
		t.Fatalf("get deleted: %d", code)
	}

	// The delivery log of a subscriber, through the API.
	if code, body := b.do("POST", "/v1/incidents", adminToken, event("API-2", 1, "investigating"), nil); code != http.StatusAccepted {
		t.Fatalf("publish: %d %s", code, body)
	}
	b.waitFor("delivery", 10*time.Second, func() bool { return b.recv.delivered("/m_1") == 1 })
	var log struct {
		Items []dispatcher.Record `json:"items"`
	}
	b.waitFor("log", 5*time.Second, func() bool {
		b.do("GET", "/v1/deliveries?subscriber=m_1", adminToken, "", &log)
		return len(log.Items) == 2 // webhook delivered, email to the outbox
	})
	for _, r := range log.Items {
		if r.SubscriberID != "m_1" || (r.Outcome != dispatcher.Delivered && r.Outcome != dispatcher.Outboxed) {
			t.Errorf("record %+v", r)
		}
	}
	var one struct {
		Items []dispatcher.Record `json:"items"`
	}
	if code, _ := b.do("GET", "/v1/deliveries?subscriber=m_1&limit=1&delivery="+log.Items[0].DeliveryID, adminToken, "", &one); code != http.StatusOK || len(one.Items) != 1 {
		t.Fatalf("one delivery: %d %+v", code, one)
	}
	for q, field := range map[string]string{
		"":                                "subscriber",
		"?subscriber=m.*":                 "subscriber",
		"?subscriber=m_1&delivery=a>":     "delivery",
		"?subscriber=m_1&limit=100000":    "limit",
		"?subscriber=m_1&since=yesterday": "since",
	} {
		if code, _ := b.do("GET", "/v1/deliveries"+q, adminToken, "", &e); code != http.StatusBadRequest || e.Fields[0].Field != field {
			t.Errorf("deliveries%s: %d %+v, want 400 on %s", q, code, e, field)
		}
	}
}

// TestAPIFieldErrorsCapped: a subscriber with thousands of bad values gets
// a short answer listing the first problems and counting the others.
func TestAPIFieldErrorsCapped(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	var eps []string
	for i := range 2000 {
		eps = append(eps, fmt.Sprintf(`{"id":"e%d","channel":"pigeon"}`, i))
	}
	doc := `{"id":"m_big","locale":"fr-FR","components":[` + strings.TrimSuffix(strings.Repeat(`"Bad Component",`, 10000), ",") +
		`],"endpoints":[` + strings.Join(eps, ",") + `]}`
	var e apiError
	code, body := b.do("PUT", "/v1/subscribers/m_big", adminToken, doc, &e)
	if code != http.StatusBadRequest {
		t.Fatalf("%d %.300s", code, body)
	}
	if len(body) > 32<<10 {
		t.Errorf("the error answer is %d bytes", len(body))
	}
	if len(e.Fields) != incident.MaxFieldErrors+1 {
		t.Fatalf("%d fields listed, want %d and the count of the others", len(e.Fields), incident.MaxFieldErrors+1)
	}
	if f := e.Fields[0]; f.Field != "components" || !strings.Contains(f.Message, "at most") {
		t.Errorf("first problem %+v, want the components list's length", f)
	}
	if last := e.Fields[len(e.Fields)-1]; last.Field != "(more)" || !strings.Contains(last.Message, "more problems not listed") {
		t.Errorf("last entry %+v", last)
	}
}

func TestAPIDeadLettersAndSuppressions(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if code, body := b.do("GET", "/v1/deadletters", adminToken, "", &list); code != http.StatusOK || list.Items == nil {
		t.Fatalf("dead letters: %d %s", code, body)
	}
	// A bad event published straight to the stream is dead-lettered by
	// the fan-out, then listed and replayed through the API.
	js, err := jetstream.New(b.nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(b.ctx, dispatcher.IncidentSubject("BAD"), []byte(`{"id":"BAD:1","incident_id":"BAD"}`)); err != nil {
		t.Fatal(err)
	}
	var dead struct {
		Items []dispatcher.DeadLetter `json:"items"`
	}
	b.waitFor("the dead letter", 10*time.Second, func() bool {
		b.do("GET", "/v1/deadletters", adminToken, "", &dead)
		return len(dead.Items) == 1
	})
	if code, body := b.do("POST", fmt.Sprintf("/v1/deadletters/%d/replay", dead.Items[0].Seq), adminToken, "", nil); code != http.StatusOK {
		t.Errorf("replay: %d %s", code, body)
	}
	if code, _ := b.do("GET", "/v1/deadletters?limit=0", adminToken, "", nil); code != http.StatusBadRequest {
		t.Errorf("limit 0: %d", code)
	}
	if code, _ := b.do("GET", "/v1/deadletters?after=-1", adminToken, "", nil); code != http.StatusBadRequest {
		t.Errorf("after -1: %d", code)
	}
	if code, _ := b.do("POST", "/v1/deadletters/0/replay", adminToken, "", nil); code != http.StatusBadRequest {
		t.Errorf("replay seq 0: %d", code)
	}
	if code, _ := b.do("POST", "/v1/deadletters/999/replay", adminToken, "", nil); code != http.StatusNotFound {
		t.Errorf("replay an unknown dead letter: %d", code)
	}
	if err := b.d.Suppressions().Add(b.ctx, "email", "ops@dupont.example", "550 5.1.1 no such user"); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the suppression listed", 5*time.Second, func() bool {
		b.do("GET", "/v1/suppressions", adminToken, "", &list)
		return len(list.Items) == 1
	})
	if code, _ := b.do("DELETE", "/v1/suppressions/ops@dupont.example", adminToken, "", nil); code != http.StatusNoContent {
		t.Errorf("unsuppress: %d", code)
	}
	if code, _ := b.do("DELETE", "/v1/suppressions/ops@dupont.example", adminToken, "", nil); code != http.StatusNotFound {
		t.Errorf("unsuppress again: %d", code)
	}
}
