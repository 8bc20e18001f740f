package slack

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestRenderedMessagesPassUnchanged: every message package templates
// rendered for the corpus incident passes the limits, and slack-go carries
// its blocks to Slack unchanged.
func TestRenderedMessagesPassUnchanged(t *testing.T) {
	t.Parallel()
	for _, u := range corpusIncident(t) {
		for what, raw := range map[string][]byte{"body": u.Body, "parent": u.Parent} {
			m, err := decodeMessage(what, raw)
			if err != nil {
				t.Fatalf("update %d %s: %v", u.Sequence, what, err)
			}
			var orig struct {
				Text   string          `json:"text"`
				Blocks json.RawMessage `json:"blocks"`
			}
			if err := json.Unmarshal(raw, &orig); err != nil {
				t.Fatal(err)
			}
			blocks, err := json.Marshal(m.Blocks.BlockSet)
			if err != nil {
				t.Fatal(err)
			}
			if m.Text != orig.Text || !sameJSON(t, blocks, orig.Blocks) {
				t.Errorf("update %d %s changed on its way through slack-go:\n got %s\nwant %s", u.Sequence, what, blocks, orig.Blocks)
			}
		}
	}
}

func TestCheckMessage(t *testing.T) {
	t.Parallel()
	section := func(n int) string {
		return `{"type":"section","text":{"type":"mrkdwn","text":"` + strings.Repeat("é", n) + `"}}`
	}
	blocks := func(bs ...string) string { return `{"text":"t","blocks":[` + strings.Join(bs, ",") + `]}` }
	repeat := func(s string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	field := func(n int) string { return `{"type":"mrkdwn","text":"` + strings.Repeat("x", n) + `"}` }
	for _, tc := range []struct {
		name string
		raw  string
		ok   bool
	}{
		{"text only", `{"text":"hello"}`, true},
		{"blocks only", `{"blocks":[{"type":"divider"}]}`, true},
		{"3000-character section", blocks(section(3000)), true},
		{"3001-character section", blocks(section(3001)), false},
		{"50 blocks", blocks(repeat(`{"type":"divider"}`, 50)...), true},
		{"51 blocks", blocks(repeat(`{"type":"divider"}`, 51)...), false},
		{"150-character header", blocks(`{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("a", 150) + `"}}`), true},
		{"151-character header", blocks(`{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("a", 151) + `"}}`), false},
		{"header without text", blocks(`{"type":"header"}`), false},
		{"10 fields", blocks(`{"type":"section","fields":[` + strings.Join(repeat(field(2000), 10), ",") + `]}`), true},
		{"11 fields", blocks(`{"type":"section","fields":[` + strings.Join(repeat(field(1), 11), ",") + `]}`), false},
		{"2001-character field", blocks(`{"type":"section","fields":[` + field(2001) + `]}`), false},
		{"empty section", blocks(`{"type":"section"}`), false},
		{"empty context", blocks(`{"type":"context","elements":[]}`), false},
		{"context with an image", blocks(`{"type":"context","elements":[{"type":"image","image_url":"https://x/y.png","alt_text":"y"}]}`), true},
		{"block without type", blocks(`{"text":{"type":"mrkdwn","text":"x"}}`), false},
		{"40000-character text", `{"text":"` + strings.Repeat("a", 40000) + `"}`, true},
		{"40001-character text", `{"text":"` + strings.Repeat("a", 40001) + `"}`, false},
		{"empty object", `{}`, false},
		{"empty", ``, false},
		{"not JSON", `text`, false},
		{"an array", `[]`, false},
		{"blocks not an array", `{"text":"a","blocks":{}}`, false},
		{"too large", `{"text":"` + strings.Repeat("a", MaxPayloadBytes) + `"}`, false},
	} {
		err := checkMessage("body", []byte(tc.raw))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: err = %v, want ErrInvalidMessage", tc.name, err)
		}
	}
}

// TestDecodeMessageUnknownBlock: a block slack-go cannot carry is a
// permanent, readable error, not a panic or a silent drop.
func TestDecodeMessageUnknownBlock(t *testing.T) {
	t.Parallel()
	_, err := decodeMessage("body", []byte(`{"text":"t","blocks":[{"type":"context","elements":[{"type":"button","text":"x"}]}]}`))
	if !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("err = %v", err)
	}
	if err != nil && len(fmt.Sprint(err)) > 300 {
		t.Errorf("error is %d bytes long", len(fmt.Sprint(err)))
	}
}

// TestCheckedCache: a message that passed is not parsed again; one that
// failed keeps failing.
func TestCheckedCache(t *testing.T) {
	t.Parallel()
	c := newChecked()
	good, bad := corpusIncident(t)[0].Body, []byte(`{"blocks":[{"type":"header"}]}`)
	for range 3 {
		if err := c.check("body", good); err != nil {
			t.Fatal(err)
		}
		if err := c.check("body", bad); !errors.Is(err, ErrInvalidMessage) {
			t.Fatalf("err = %v", err)
		}
	}
	if len(c.m) != 1 {
		t.Errorf("%d cached, want 1", len(c.m))
	}
}
