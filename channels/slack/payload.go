package slack

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"sync"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"
)

// Slack's message limits (https://api.slack.com/reference/block-kit).
const (
	// MaxBlocks is the most blocks one message may hold.
	MaxBlocks = 50
	// MaxText is the longest top-level text, in characters.
	MaxText = 40000
	// MaxSectionText is the longest section or context text.
	MaxSectionText = 3000
	// MaxHeaderText is the longest header text.
	MaxHeaderText = 150
	// MaxFields is the most fields one section may hold.
	MaxFields = 10
	// MaxFieldText is the longest section field.
	MaxFieldText = 2000
	// MaxContextElements is the most elements one context block may hold.
	MaxContextElements = 10
	// MaxPayloadBytes bounds a whole message's JSON.
	MaxPayloadBytes = 1 << 20
)

// wireMessage is the part of a Slack message JSON that limits apply to.
type wireMessage struct {
	Text   string      `json:"text"`
	Blocks []wireBlock `json:"blocks"`
}

type wireBlock struct {
	Type     string     `json:"type"`
	Text     *wireText  `json:"text"`
	Fields   []wireText `json:"fields"`
	Elements []wireText `json:"elements"`
}

type wireText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// checkMessage checks a rendered Slack message ({"text": …, "blocks":
// […]}) against Slack's limits. what names it in errors ("body",
// "parent").
func checkMessage(what string, raw []byte) error {
	if len(raw) == 0 {
		return fmt.Errorf("%w: no %s", ErrInvalidMessage, what)
	}
	if len(raw) > MaxPayloadBytes {
		return fmt.Errorf("%w: %s is %d bytes, over %d", ErrInvalidMessage, what, len(raw), MaxPayloadBytes)
	}
	var m wireMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%w: %s is not a Slack message JSON object", ErrInvalidMessage, what)
	}
	if m.Text == "" && len(m.Blocks) == 0 {
		return fmt.Errorf("%w: %s has neither text nor blocks", ErrInvalidMessage, what)
	}
	if n := utf8.RuneCountInString(m.Text); n > MaxText {
		return fmt.Errorf("%w: %s text has %d characters, over %d", ErrInvalidMessage, what, n, MaxText)
	}
	if len(m.Blocks) > MaxBlocks {
		return fmt.Errorf("%w: %s has %d blocks, over %d", ErrInvalidMessage, what, len(m.Blocks), MaxBlocks)
	}
	for i, b := range m.Blocks {
		if err := checkBlock(b); err != nil {
			return fmt.Errorf("%w: %s block %d (%s): %s", ErrInvalidMessage, what, i+1, clipType(b.Type), err)
		}
	}
	return nil
}

func checkBlock(b wireBlock) error {
	over := func(what, s string, max int) error {
		if n := utf8.RuneCountInString(s); n > max {
			return fmt.Errorf("%s has %d characters, over %d", what, n, max)
		}
		return nil
	}
	switch b.Type {
	case "":
		return fmt.Errorf("no type")
	case "header":
		if b.Text == nil || b.Text.Text == "" {
			return fmt.Errorf("no text")
		}
		return over("text", b.Text.Text, MaxHeaderText)
	case "section":
		if b.Text == nil && len(b.Fields) == 0 {
			return fmt.Errorf("neither text nor fields")
		}
		if b.Text != nil {
			if err := over("text", b.Text.Text, MaxSectionText); err != nil {
				return err
			}
		}
		if len(b.Fields) > MaxFields {
			return fmt.Errorf("%d fields, over %d", len(b.Fields), MaxFields)
		}
		for _, f := range b.Fields {
			if err := over("a field", f.Text, MaxFieldText); err != nil {
				return err
			}
		}
	case "context":
		if len(b.Elements) == 0 || len(b.Elements) > MaxContextElements {
			return fmt.Errorf("%d elements, want 1 to %d", len(b.Elements), MaxContextElements)
		}
		for _, e := range b.Elements {
			if err := over("an element", e.Text, MaxSectionText); err != nil {
				return err
			}
		}
	}
	return nil
}

// clipType keeps a block type printable and short in errors.
func clipType(s string) string {
	if !isCode([]byte(s)) {
		return "?"
	}
	return s
}

// maxCachedChecks bounds the cache of checked messages; it is emptied when
// full.
const maxCachedChecks = 4096

// checked remembers the messages that passed [checkMessage], by a hash of
// their bytes: the dispatcher sends one rendering (per update, locale and
// time zone) to many endpoints, so most sends skip the JSON parse.
type checked struct {
	seed maphash.Seed
	mu   sync.RWMutex
	m    map[uint64]struct{}
}

func newChecked() *checked { return &checked{seed: maphash.MakeSeed(), m: make(map[uint64]struct{})} }

// check is checkMessage, remembering successes.
func (c *checked) check(what string, raw []byte) error {
	h := maphash.Bytes(c.seed, raw)
	c.mu.RLock()
	_, ok := c.m[h]
	c.mu.RUnlock()
	if ok {
		return nil
	}
	if err := checkMessage(what, raw); err != nil {
		return err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedChecks {
		clear(c.m)
	}
	c.m[h] = struct{}{}
	c.mu.Unlock()
	return nil
}

// apiMessage is a rendered message as slack-go posts it.
type apiMessage struct {
	Text   string          `json:"text"`
	Blocks slackapi.Blocks `json:"blocks"`
}

// decodeMessage checks raw and decodes it for the Web API.
func decodeMessage(what string, raw []byte) (*apiMessage, error) {
	if err := checkMessage(what, raw); err != nil {
		return nil, err
	}
	var m apiMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		// slack-go knows fewer block and element types than Slack.
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalidMessage, what, summarize([]byte(err.Error()), false, nil))
	}
	return &m, nil
}

// options returns the chat.postMessage or chat.update options that carry
// m. The text is already escaped for mrkdwn by package templates. An edit
// always sends blocks: without them Slack would keep the old ones.
func (m *apiMessage) options(edit bool) []slackapi.MsgOption {
	opts := []slackapi.MsgOption{slackapi.MsgOptionText(m.Text, false)}
	if len(m.Blocks.BlockSet) > 0 || edit {
		opts = append(opts, slackapi.MsgOptionBlocks(m.Blocks.BlockSet...))
	}
	return opts
}
