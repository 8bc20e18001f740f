package api

import (
	"github.com/heraldhq/herald/ingest"

	"bytes"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// openAPIPath is the published contract of the admin API.
const openAPIPath = "../docs/openapi.yaml"

// openAPI reads docs/openapi.yaml as JSON-shaped data.
func openAPI(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	// Through JSON, so that every map has string keys and numbers are
	// what a JSON Schema validator expects.
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("%s is not JSON-shaped: %v", openAPIPath, err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return out.(map[string]any)
}

// documentedRoutes returns "METHOD /path" for every operation of the
// document, and the operations by route.
func documentedRoutes(t *testing.T, doc map[string]any) map[string]map[string]any {
	t.Helper()
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi version %q, want 3.1.x", v)
	}
	out := map[string]map[string]any{}
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				out[strings.ToUpper(method)+" "+path] = op.(map[string]any)
			}
		}
	}
	return out
}

// TestOpenAPIDocumentsEveryRoute: every route the API registers is in
// docs/openapi.yaml, and every documented route exists; /v1 operations
// document the token's 401 and every operation has an id and a summary.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true})
	doc := openAPI(t)
	documented := documentedRoutes(t, doc)
	s, err := New(b.d, Config{AdminToken: "x", Gatherer: b.gatherer(), Sources: ingest.NewSources().Handler()})
	if err != nil {
		t.Fatal(err)
	}
	registered := s.Routes()
	for _, r := range registered {
		if documented[r] == nil {
			t.Errorf("route %s is not documented in %s", r, openAPIPath)
		}
	}
	ids := map[string]bool{}
	for r, op := range documented {
		if !slices.Contains(registered, r) {
			t.Errorf("%s documents %s, which the API does not serve", openAPIPath, r)
		}
		id, _ := op["operationId"].(string)
		if id == "" || ids[id] || op["summary"] == nil {
			t.Errorf("%s: operationId %q (unique, required) and a summary", r, id)
		}
		ids[id] = true
		responses, _ := op["responses"].(map[string]any)
		if _, path, _ := strings.Cut(r, " "); strings.HasPrefix(path, "/v1/") && responses["401"] == nil {
			t.Errorf("%s does not document the 401 of a missing token", r)
		}
	}
	// Every reference resolves.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && resolve(doc, ref) == nil {
				t.Errorf("unresolved $ref %s", ref)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
}

// resolve returns what a local reference ("#/components/schemas/Event")
// points to, or nil.
func resolve(doc map[string]any, ref string) any {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = doc
	for _, part := range strings.Split(p, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// TestOpenAPIAnswersMatchTheirSchemas: the answers the API really gives
// validate against the schemas the document gives for them.
func TestOpenAPIAnswersMatchTheirSchemas(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	doc := openAPI(t)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	const id = "https://github.com/heraldhq/herald/docs/openapi.json"
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	names := make([]string, 0, len(schemas))
	for name := range schemas {
		names = append(names, name)
	}
	sort.Strings(names)
	compiled := map[string]*jsonschema.Schema{}
	for _, name := range names {
		sch, err := c.Compile(id + "#/components/schemas/" + name)
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		compiled[name] = sch
	}
	check := func(what string, schema string, body []byte) {
		t.Helper()
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: not JSON: %s", what, body)
		}
		if err := compiled[schema].Validate(inst); err != nil {
			t.Errorf("%s does not match %s: %v\n%s", what, schema, err, body)
		}
	}
	items := func(what, schema string, body []byte) {
		t.Helper()
		var page struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(body, &page); err != nil || page.Items == nil {
			t.Fatalf("%s: %s", what, body)
		}
		for _, it := range page.Items {
			check(what, schema, it)
		}
	}

	code, body := b.do("PUT", "/v1/subscribers/m1", adminToken, b.subscriber("m1", "it-IT"), nil)
	check("PUT subscriber", "Subscriber", body)
	if code != 201 {
		t.Fatalf("put: %d", code)
	}
	b.putSubscriber(b.subscriber("m1", "it-IT"))
	_, body = b.do("POST", "/v1/incidents", adminToken, event("OA-1", 1, "investigating", "priority", "P2"), nil)
	check("POST incident", "PublishResult", body)
	_, body = b.do("POST", "/v1/incidents", adminToken, event("OA-1", 2, "fixed"), nil)
	check("POST a bad incident", "Error", body)
	_, body = b.do("GET", "/v1/subscribers", "wrong", "", nil)
	check("401", "Error", body)
	code, body = b.do("PUT", "/v1/subscribers/m2", adminToken, `{"id":"m2","name":"`+strings.Repeat("x", DefaultMaxSubscriberBytes)+`"}`, nil)
	if code != 413 || !bytes.Contains(body, []byte(`"limit": 262144`)) {
		t.Errorf("PUT an oversized subscriber: %d %s", code, body)
	}
	check("PUT an oversized subscriber", "Error", body)
	_, body = b.do("GET", "/v1/subscribers", adminToken, "", nil)
	check("GET subscribers", "SubscriberPage", body)
	_, body = b.do("GET", "/v1/subscribers/m1", adminToken, "", nil)
	check("GET subscriber", "Subscriber", body)
	b.waitFor("the webhook", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })
	b.waitFor("the snapshot", 10*time.Second, func() bool {
		code, body = b.do("GET", "/v1/incidents/OA-1", adminToken, "", nil)
		return code == 200 && bytes.Contains(body, []byte(`"done"`))
	})
	check("GET incident", "Incident", body)
	b.waitFor("the record", 10*time.Second, func() bool {
		_, body = b.do("GET", "/v1/deliveries?subscriber=m1", adminToken, "", nil)
		return bytes.Contains(body, []byte(`"delivered"`))
	})
	items("GET deliveries", "Record", body)
	code, body = b.do("GET", "/v1/ledger?incident=OA-1", adminToken, "", nil)
	if code != 200 {
		t.Fatalf("GET ledger: %d %s", code, body)
	}
	lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("GET ledger: %d rows, want 1: %s", len(lines), body)
	}
	check("GET ledger", "LedgerRow", lines[0])
	_, body = b.do("POST", "/v1/incidents/OA-1/recall", adminToken, `{"event_id":"OA-1:1"}`, nil)
	check("POST recall", "RecallResult", body)
	_, body = b.do("POST", "/v1/incidents/OA-1/recall", adminToken, `{"event_id":"OA-1:9"}`, nil)
	check("POST recall of no update", "Error", body)
	_, body = b.do("GET", "/v1/deadletters", adminToken, "", nil)
	items("GET deadletters", "DeadLetter", body)
	if err := b.d.Suppressions().Add(b.ctx, "email", "ops@dupont.example", "550 5.1.1"); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the suppression", 5*time.Second, func() bool {
		_, body = b.do("GET", "/v1/suppressions", adminToken, "", nil)
		return bytes.Contains(body, []byte("ops@dupont.example"))
	})
	items("GET suppressions", "Suppression", body)
	_, body = b.do("GET", "/readyz", "", "", nil)
	check("readyz", "Status", body)
}
