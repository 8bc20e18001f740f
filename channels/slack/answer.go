package slack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/heraldhq/herald/channels"
)

// Errors Send wraps, for callers to match with errors.Is.
var (
	// ErrBotModeUnavailable: a channel-id endpoint, but no bot token is
	// configured. Permanent.
	ErrBotModeUnavailable = errors.New("slack bot mode unavailable: no bot token configured")
	// ErrInvalidAddress: the endpoint address is neither a Slack
	// incoming-webhook URL nor a channel id. Permanent.
	ErrInvalidAddress = errors.New("invalid slack address")
	// ErrInvalidMessage: the rendered message is not Slack JSON, or
	// exceeds Slack's limits. Permanent.
	ErrInvalidMessage = errors.New("invalid slack message")
	// ErrBotToken: Slack refused Herald's bot token (invalid_auth,
	// token_revoked, token_expired, account_inactive). It concerns every
	// bot-mode endpoint, not only the one being sent to. Permanent, and
	// the endpoint is disabled as Slack's answer asks.
	ErrBotToken = errors.New("slack refused the bot token")
	// ErrThreadBusy: another Herald process is posting to the same
	// incident's thread in the same channel. Retryable.
	ErrThreadBusy = errors.New("slack thread busy: another delivery holds it")
	// ErrRateLimited: this channel's turn under the per-channel limit is
	// further away than Config.MaxRateWait. Retryable after the delay.
	ErrRateLimited = errors.New("slack channel rate limit")
)

// Limits on what is kept of an answer.
const (
	// maxCodeLen is the longest string taken for a Slack error code.
	maxCodeLen = 64
	// summaryRunes is the longest provider message kept in an error.
	summaryRunes = 200
	// summaryReadBytes is how much of a refused answer is read.
	summaryReadBytes = 2048
	// minSecretPart is the shortest URL part treated as a secret when an
	// answer echoes the request.
	minSecretPart = 8
)

// codeInfo is what Herald does with one Slack error code.
type codeInfo struct {
	action outcome
	why    string
}

type outcome int

const (
	permanent outcome = iota
	retry
	disable
	disableToken // disable, and the bot token is at fault
)

// codes lists the Slack error codes Herald treats specially, with the
// explanation the delivery log keeps. Web API codes:
// https://api.slack.com/methods/chat.postMessage; incoming-webhook codes:
// https://api.slack.com/messaging/webhooks#handling_errors.
var codes = map[string]codeInfo{
	// Retry.
	"ratelimited":            {retry, "rate limited"},
	"rate_limited":           {retry, "rate limited"},
	"message_limit_exceeded": {retry, "the workspace sends too many messages"},
	"internal_error":         {retry, "Slack internal error"},
	"fatal_error":            {retry, "Slack internal error"},
	"service_unavailable":    {retry, "Slack unavailable"},
	"request_timeout":        {retry, "Slack timed out"},
	"team_added_to_org":      {retry, "the workspace is being migrated"},
	// The endpoint is gone.
	"channel_not_found":   {disable, "the channel does not exist or is not visible"},
	"not_in_channel":      {disable, "the bot is not a member of the channel"},
	"is_archived":         {disable, "the channel is archived"},
	"channel_is_archived": {disable, "the channel is archived"},
	"no_service":          {disable, "the incoming webhook was removed or disabled"},
	"no_service_id":       {disable, "the incoming webhook URL is incomplete"},
	"invalid_token":       {disable, "the incoming webhook's token is invalid"},
	"no_team":             {disable, "the workspace does not exist"},
	"team_disabled":       {disable, "the workspace is disabled"},
	// Herald's bot token is refused.
	"invalid_auth":     {disableToken, "the bot token is invalid"},
	"account_inactive": {disableToken, "the bot's account is deactivated"},
	"token_revoked":    {disableToken, "the bot token was revoked"},
	"token_expired":    {disableToken, "the bot token expired"},
	// Permanent, with a readable reason.
	"msg_too_long":   {permanent, "message too long"},
	"invalid_blocks": {permanent, "Slack refused the blocks"},
	"no_text":        {permanent, "message without text"},
	"missing_scope":  {permanent, "the bot token lacks the chat:write scope"},
}

// parseAnswer reads a Slack error answer: the bare code incoming webhooks
// send ("no_service"), or a Web API JSON answer ({"ok":false,"error":
// "channel_not_found"}). It returns the code, or "" and a short summary of
// an answer it does not recognise, with secrets redacted (secrets: the
// token, the webhook URL's parts; longest first is not required).
func parseAnswer(body []byte, truncated bool, secrets []string) (code, summary string) {
	b := bytes.TrimSpace(body)
	if isCode(b) {
		return string(b), ""
	}
	if len(b) > 0 && b[0] == '{' && !truncated {
		var v struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &v) == nil && isCode([]byte(v.Error)) {
			return v.Error, ""
		}
	}
	return "", summarize(b, truncated, secrets)
}

// isCode reports whether b looks like a Slack error code: lower-case
// letters, digits and underscores, starting with a letter.
func isCode(b []byte) bool {
	if len(b) == 0 || len(b) > maxCodeLen || b[0] < 'a' || b[0] > 'z' {
		return false
	}
	for _, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// classify turns a refused call into the outcome the dispatcher reads.
// status is the HTTP status (200 for a Web API "ok": false); webhook says
// the answer came from an incoming webhook, where 404 and 410 mean the
// webhook is gone (for the Web API, a 404 is Herald's misconfiguration and
// must not disable partners' endpoints).
func classify(status int, header http.Header, code, summary string, webhook bool, now time.Time) error {
	pe := &channels.ProviderError{Status: status, Code: code, Message: summary}
	info, known := codes[code]
	if known && pe.Message == "" {
		pe.Message = info.why
	}
	switch {
	case (known && info.action == retry) || channels.RetryableStatus(status):
		var after time.Duration
		if header != nil {
			after, _ = channels.ParseRetryAfter(header.Get("Retry-After"), now)
		}
		return channels.RetryAfter(after, pe)
	case known && info.action == disableToken:
		return channels.Disable(fmt.Errorf("%w: %w", ErrBotToken, pe))
	case known && info.action == disable,
		webhook && (status == http.StatusNotFound || status == http.StatusGone):
		return channels.Disable(pe)
	}
	return channels.StatusOutcome(pe, header, now) // by status: permanent, 3xx named
}

// summarize turns the start of an answer into one short, printable line,
// with secrets redacted. truncated says the body was cut at the read
// limit: a secret cut in two there is dropped too.
func summarize(body []byte, truncated bool, secrets []string) string {
	return channels.Printable(channels.Redact(string(body), truncated, secrets...), summaryRunes)
}
