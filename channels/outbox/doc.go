// Package outbox is the stand-in channel for providers Herald is not yet
// configured for: on a fresh install it writes each rendered message to a
// file under the data directory instead of sending it, so the whole flow
// (fan-out, rendering, delivery log) can be seen and checked before any
// SMTP server, SMS account or Slack app exists.
//
// Files are laid out as <dir>/<channel>/<YYYY-MM-DD>/<delivery id>.<ext>:
//
//   - email: a complete RFC 5322 message (.eml) that opens in any mail
//     client: the very bytes the email channel would submit, rendered by
//     package email's Renderer (multipart/alternative with the text and
//     HTML parts, UTF-8 subject encoded, the message's extra headers such
//     as List-Unsubscribe, a Message-ID and a MIME boundary derived from
//     the delivery id, the DKIM signature when the renderer signs);
//   - sms: a .txt with To, Date, Delivery and Locale lines, a blank line,
//     and the text exactly as it would be sent;
//   - slack and webhook: a .json envelope (delivery id, channel,
//     destination, date, kind, locale) around the pretty-printed payload.
//     The destination never holds a secret: a Slack incoming-webhook URL
//     is recorded as "slack incoming webhook", a webhook URL as its scheme
//     and host.
//
// Writes are atomic (temporary file, fsync, rename) with mode 0600 in
// directories of mode 0700: rendered messages hold personal data and
// signed unsubscribe links. The delivery id names the file, so a retried
// send overwrites its earlier copy and the outbox never holds duplicates.
// The receipt has Outbox set and the file's path relative to the outbox
// root as Detail; the dispatcher records the delivery as "outbox".
//
// The .eml files come from the renderer the email channel sends with
// (Config.Email, built with email.NewRenderer from the channel's
// configuration), so what the outbox shows is what would have been sent,
// and a message the channel would refuse is refused here too. Without
// DKIM a file is reproducible: the same delivery, endpoint and clock give
// the same bytes; a DKIM signature carries the time of signing.
package outbox
