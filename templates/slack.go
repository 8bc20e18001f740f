package templates

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Slack Block Kit limits.
const (
	slackMaxBlocks      = 50
	slackMaxSectionText = 3000
	slackMaxHeaderText  = 150
	slackMaxFieldText   = 2000
	slackMaxFields      = 10
	slackMaxText        = 40000
)

// slackMessage is a chat.postMessage / incoming-webhook payload.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

func mrkdwn(s string) *slackText { return &slackText{Type: "mrkdwn", Text: s} }

func slackHeader(s string) slackBlock {
	return slackBlock{Type: "header", Text: &slackText{Type: "plain_text", Text: clip(s, slackMaxHeaderText), Emoji: true}}
}

// renderSlack renders the update message and the incident's parent message.
//
// shape tells which of the recipient's links (unsubscribe, preferences)
// the message carries, as placeholders filled in after the cache. With
// fallback (the update lacks the reader's language), the message says so
// in the reader's language, naming the language of the text, as the email
// does.
func (r *Renderer) renderSlack(p *prepared, lp langPair, loc *time.Location, shape int, fallback bool) (*Rendered, error) {
	v := r.newView(p, lp, loc, fallback, true)
	cat := v.cat
	colon := cat.must("locale.colon")
	label := func(key string) string { return "*" + escapeMrkdwn(cat.must(key)) + "*" }
	field := func(key, value string) slackText {
		return slackText{Type: "mrkdwn", Text: clip(label(key)+"\n"+value, slackMaxFieldText)}
	}
	facts := []slackText{field("field.status", v.Emoji+" "+escapeMrkdwn(v.StatusLabel))}
	if v.PriorityLabel != "" {
		facts = append(facts, field("field.priority", escapeMrkdwn(v.PriorityLabel)))
	}
	facts = append(facts, field("field.components", escapeMrkdwn(v.ComponentList)))
	if v.Window != "" {
		facts = append(facts, field("field.window", escapeMrkdwn(v.Window)))
	}
	if v.PreviousWindow != "" {
		facts = append(facts, field("field.previous_window", "~"+escapeMrkdwn(v.PreviousWindow)+"~"))
	}
	if v.Started != "" {
		facts = append(facts, field("field.started", escapeMrkdwn(v.Started)))
	}
	if v.Ended != "" {
		facts = append(facts, field("field.ended", escapeMrkdwn(v.Ended)))
	} else if v.Ongoing {
		facts = append(facts, field("field.ended", escapeMrkdwn(cat.must("field.ongoing"))))
	}
	if v.Updated != "" {
		facts = append(facts, field("field.updated", escapeMrkdwn(v.Updated)))
	}
	if v.Reference != "" {
		facts = append(facts, field("field.reference", escapeMrkdwn(v.Reference)))
	}
	facts = facts[:min(len(facts), slackMaxFields)]
	summary := "[" + v.StatusLabel + "] " + v.Title
	fallbackText := clip(escapeMrkdwn(summary+" - "+v.Summary), slackMaxText)

	// The update message: title, summary, the fallback note, facts, body,
	// link.
	msg := slackMessage{Text: fallbackText}
	msg.Blocks = append(msg.Blocks,
		slackHeader(v.Emoji+" "+v.Title),
		slackBlock{Type: "section", Text: mrkdwn("*" + escapeMrkdwn(v.Summary) + "*")},
	)
	if v.FallbackNote != "" {
		msg.Blocks = append(msg.Blocks, slackBlock{Type: "context", Elements: []slackText{*mrkdwn(escapeMrkdwn(v.FallbackNote))}})
	}
	msg.Blocks = append(msg.Blocks,
		slackBlock{Type: "section", Fields: facts},
		slackBlock{Type: "divider"},
	)
	var tail []slackBlock
	if v.URL != "" {
		tail = append(tail, slackBlock{Type: "context", Elements: []slackText{*mrkdwn("<" + slackURL(v.URL) + "|" + escapeMrkdwn(cat.must("slack.view")) + ">")}})
	}
	var links []string
	if v.FollowURL != "" {
		// Anyone reading the channel may follow this incident by email.
		links = append(links, "<"+slackURL(v.FollowURL)+"|"+escapeMrkdwn(cat.must("email.follow"))+">")
	}
	if shape&hasPreferences != 0 {
		links = append(links, "<"+prefsMark+"|"+escapeMrkdwn(cat.must("email.preferences"))+">")
	}
	if shape&hasUnsubscribe != 0 {
		links = append(links, "<"+unsubMark+"|"+escapeMrkdwn(cat.must("email.unsubscribe"))+">")
	}
	if len(links) > 0 {
		tail = append(tail, slackBlock{Type: "context", Elements: []slackText{*mrkdwn(strings.Join(links, " · "))}})
	}
	doc := p.texts[lp.text].doc
	if v.Truncated {
		doc = p.texts[lp.text].short
	}
	chunks := splitMrkdwn(doc.Mrkdwn(), slackMaxSectionText)
	room := slackMaxBlocks - len(msg.Blocks) - len(tail)
	truncated := v.Truncated
	if len(chunks) > room {
		chunks, truncated = chunks[:room-1], true
	}
	for _, c := range chunks {
		msg.Blocks = append(msg.Blocks, slackBlock{Type: "section", Text: mrkdwn(c)})
	}
	if truncated {
		more := "…"
		if v.URL != "" {
			more = "… <" + slackURL(v.URL) + "|" + escapeMrkdwn(cat.must("slack.read_more")) + ">"
		}
		msg.Blocks = append(msg.Blocks, slackBlock{Type: "section", Text: mrkdwn(more)})
	}
	msg.Blocks = append(msg.Blocks, tail...)
	body, err := marshalJSON(msg)
	if err != nil {
		return nil, err
	}

	// The parent message: the incident's current state.
	marker := v.Emoji
	if v.Closed {
		marker = statusEmoji["resolved"]
	}
	parent := slackMessage{Text: clip(escapeMrkdwn(summary), slackMaxText)}
	current := label("slack.current") + escapeMrkdwn(colon) + " " + marker + " *" + escapeMrkdwn(v.StatusLabel) + "*\n" + escapeMrkdwn(v.Summary)
	parent.Blocks = append(parent.Blocks,
		slackHeader(marker+" "+v.Title),
		slackBlock{Type: "section", Text: mrkdwn(clip(current, slackMaxSectionText))},
	)
	if len(facts) > 1 {
		parent.Blocks = append(parent.Blocks, slackBlock{Type: "section", Fields: facts[1:]})
	}
	ctx := escapeMrkdwn(cat.must("slack.thread"))
	if v.URL != "" {
		ctx = "<" + slackURL(v.URL) + "|" + escapeMrkdwn(cat.must("slack.view")) + "> · " + ctx
	}
	parent.Blocks = append(parent.Blocks, slackBlock{Type: "context", Elements: []slackText{*mrkdwn(ctx)}})
	parentBody, err := marshalJSON(parent)
	if err != nil {
		return nil, err
	}
	return &Rendered{Locale: lp.text, Frame: lp.frame, Subject: subjectLine(summary), Text: fallbackText, Body: body, Parent: parentBody, ContentType: "application/json"}, nil
}

// slackURL makes a URL safe inside <url|text>.
func slackURL(u string) string {
	return strings.NewReplacer("<", "%3C", ">", "%3E", "|", "%7C").Replace(u)
}

// clip cuts s to max characters on a word boundary, with an ellipsis.
func clip(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return cutWords(s[:byteOffset(s, max-2)], 0) + " …"
}

// splitMrkdwn cuts mrkdwn into chunks of at most max characters, at
// paragraph boundaries, else line boundaries, else word boundaries.
func splitMrkdwn(s string, max int) []string {
	var out []string
	for s != "" {
		if utf8.RuneCountInString(s) <= max {
			out = append(out, s)
			break
		}
		limit := byteOffset(s, max)
		cut := -1
		for _, sep := range []string{"\n\n", "\n", " "} {
			if i := strings.LastIndex(s[:limit], sep); i > 0 {
				cut = i
				break
			}
		}
		if cut <= 0 {
			cut = limit
		}
		if chunk := strings.TrimSpace(s[:cut]); chunk != "" {
			out = append(out, chunk)
		}
		s = strings.TrimSpace(s[cut:])
	}
	return out
}
