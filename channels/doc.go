// Package channels defines the contract between Herald's dispatcher and the
// ways it reaches people: one small [Channel] interface, the rendered
// [Message] and the [Endpoint] it goes to, and typed outcome errors.
//
// Each channel lives in its own sub-package (email, sms, slack, webhook,
// outbox) and depends only on its provider's library; none imports the
// dispatcher. A channel returns nil when the provider accepted the message,
// or an error the dispatcher classifies with [errors.As]:
//
//   - [Permanent] (a [*PermanentError]): never retry; optionally with an
//     [Action] such as disabling the endpoint or suppressing the address;
//   - [RetryAfter] (a [*RetryError]): retry, not sooner than the hint;
//   - any other error: retry on the dispatcher's schedule.
//
// Both wrappers implement Unwrap, so wrapping them again with fmt.Errorf's
// %w keeps the decision. The contract tests in channelstest check each
// channel against the same table of provider answers.
package channels
