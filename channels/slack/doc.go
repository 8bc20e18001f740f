// Package slack is Herald's Slack channel. An endpoint's address is either
// an incoming-webhook URL (https://hooks.slack.com/services/…), the
// simplest thing for a partner to hand over, or the id of a Slack channel
// (C0123ABCD) that Herald's bot posts to with the bot token configured once
// in Herald ([Config.BotToken]).
//
// # Webhook mode
//
// Each update is one message: the rendered Block Kit JSON
// ([channels.Message.Body]) is POSTed as-is to the incoming webhook.
// Incoming webhooks cannot thread. The URL is a credential: errors name its
// host only and logs show a masked form; an answer echoing the URL has its
// parts redacted. Only https URLs on Slack's webhook hosts are used
// ([Config.WebhookHosts]), through the caller's HTTP client (built by
// package egress, so the SSRF guard applies).
//
// # Bot mode: one living message per incident and channel
//
// The first update of an incident to a channel posts the incident's parent
// message ([channels.Message.Parent]: title, current status, priority,
// components, start time, link). Each later update is posted as a reply in
// that message's thread, and the parent is edited in place (chat.update) to
// show the current status — resolved once the incident is closed. An update
// older than the one the parent shows (delivered out of order) is posted in
// the thread but never rolls the parent back. For N updates a channel thus
// gets one parent, N−1 thread replies and N−1 parent edits (with
// [Config.ReplyFirstUpdate], the first update is posted in the thread too).
//
// The (incident, channel) → thread record lives in a [ThreadStore]: in
// production [KVThreads], a JetStream key-value bucket ([ThreadsBucket],
// see [ThreadsBucketConfig]) shared by every Herald process, so that any
// process, after any restart, threads correctly. The record holds the
// parent's ts, the sequence and status the parent shows, and, per delivery
// id, the ts of the message that delivery posted.
//
// Idempotency: a message's ts is recorded before Send returns (with a
// context that outlives the caller's deadline), so a redelivered job — a
// crash or a lost ack between the post and the acknowledgement — finds its
// delivery id in the record and posts nothing again. If the record cannot
// be written, the message just posted is deleted (best effort) before the
// retryable error is returned, so that the retry does not leave a double.
//
// Concurrency: deliveries for the same incident and channel are serialised
// by a per-key lock within a process, and across processes by a lease taken
// on the record with compare-and-set and renewed at each step (another
// process's delivery meanwhile gets a retryable [ErrThreadBusy]; a lease
// whose holder died is taken over once it expires, [Config.ThreadLease]).
// Two deliveries at once never create two parents, and an edit of the
// parent never lands after a newer one.
//
// A message of no incident (a service message) is posted once, outside any
// thread, and recorded the same way. A message rendered without Slack JSON
// is posted as its plain text.
//
// # Limits and errors
//
// Slack accepts about one message per second per channel. Send spaces the
// messages it posts to one channel (or one incoming webhook) by
// [Config.PerChannelInterval], waiting at most [Config.MaxRateWait] and
// otherwise returning a retryable error with the delay. The limiter is per
// process; Slack's own answers cover the rest: `ratelimited` or HTTP 429 is
// retried after Retry-After.
//
// Messages are checked against Slack's limits before sending (50 blocks,
// 3,000 characters per section, 150 per header, 10 fields of 2,000, 40,000
// characters of text); package templates already splits within them, so a
// message over a limit is a permanent [ErrInvalidMessage].
//
// Outcomes: `channel_not_found`, `not_in_channel`, `is_archived`,
// `invalid_auth`, `account_inactive`, `token_revoked` and `token_expired`,
// and for incoming webhooks HTTP 404 and 410 and the answers `no_service`,
// `channel_is_archived`, `invalid_token` (and the like) are permanent and
// disable the endpoint, with the Slack code in a [channels.ProviderError].
// Errors about the bot token itself also wrap [ErrBotToken], so that the
// dispatcher can tell Herald's own misconfiguration from a partner's
// endpoint. 5xx answers, Slack's internal errors, timeouts and connection
// failures are retryable; any other refusal is permanent, with its code.
// Neither the bot token nor a webhook URL ever appears in an error or a log
// line.
package slack
