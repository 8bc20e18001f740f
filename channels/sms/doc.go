// Package sms is Herald's SMS channel: it sends each rendered notification's
// text through Twilio's Programmable Messaging API (github.com/twilio/twilio-go)
// and reads Twilio's signed delivery receipts.
//
// # Sending
//
// [New] builds a [Channel] from a [Config]: the account SID, the auth token
// or an API key and secret, the sender (a From number or a Messaging
// Service), and the public URL of Herald's status-callback endpoint. Its
// Send posts one message per call, from the configured sender to the
// endpoint's phone number, which it checks and normalises to E.164 again
// with a libphonenumber port ([Normalize]; subscribers are checked the same
// way when they are written). Sends are paced by a token-bucket rate limit
// and bounded by a timeout and the caller's context; twilio-go takes no
// context, so the channel binds each request to it itself.
//
// Outcomes follow what Twilio's answers mean:
//
//   - 2xx: accepted; the receipt holds the Message SID and its status;
//   - 21211 (invalid number) and 21614 (not a mobile number): permanent,
//     and the endpoint is disabled;
//   - 21610 (the recipient replied STOP): permanent, and the address is
//     suppressed, as Twilio will refuse it until the recipient replies
//     START;
//   - 429, 20429 (too many requests), 21611 (sender queue full) and 5xx:
//     retried, honouring Retry-After; timeouts and connection errors too;
//   - any other refusal: permanent, with Twilio's code in a
//     [channels.ProviderError] for the delivery log.
//
// Errors and log lines never hold the credentials, nor phone numbers in
// logs. Retries are the dispatcher's business: Send makes one request.
//
// # Delivery receipts
//
// With Config.StatusCallback set, each message asks Twilio to post its
// status changes (queued, sent, delivered, undelivered, failed) to that
// URL, with the delivery, subscriber and endpoint ids in its query.
// [CallbackHandler] serves them at [CallbackPath]: it checks
// X-Twilio-Signature with twilio-go's request validator against the
// configured public URL (403 when missing or wrong), parses the receipt
// (400 when malformed) and hands a [Callback] to the function that records
// it. [Callback.Err] classifies an undelivered or failed message the way
// Send classifies a refusal.
package sms
