// Package channelstest is the contract suite every Herald channel's tests
// run: one table of provider answers, each with the outcome the dispatcher
// must read from Send (delivered, retryable with a delay hint, permanent with
// an action), checked the same way for every channel.
//
// A channel's test supplies a [Harness]: a constructor that builds the
// channel pointed at a fake provider scripted to give one [Answer], the
// [Case]s to run, and the secrets that must never show. [Run] then checks,
// for every case:
//
//   - success or failure, and the [channels.Classification] of the error
//     (permanent or not, the [channels.Action], a Retry-After hint at least
//     as long as expected);
//   - that the error text is one short line (at most [MaxErrorLen] bytes,
//     no control characters): a provider's answer is summarised, never
//     copied whole into the delivery log;
//   - that no secret appears in the returned error (Error and %+v), in the
//     receipt's Detail, or in anything the channel logged to the
//     [*slog.Logger] the suite injects (debug level, captured in a buffer);
//   - that the provider saw exactly one attempt (channels never retry by
//     themselves), when the harness can count attempts;
//   - for a provider that never answers, that Send gives up when its
//     context's deadline passes and returns a retryable error, instead of
//     waiting for the channel's own, longer, timeout.
//
// The suite fits HTTP channels (webhooks, Slack incoming webhooks, Twilio's
// REST API) and others alike: an [Answer]'s Status is an HTTP status or an
// SMTP reply code, its Body the response body or the reply text, and the
// constructor turns it into whatever its fake provider speaks. For HTTP
// channels, [HTTPCases] is the ready-made table of a provider's API (every
// class of HTTP status, Retry-After, 410 Gone, a refused connection, a
// hanging server), [WebhookCases] the one of receivers merchants run (every
// non-2xx answer retried but 410 and an operator's list of permanent
// statuses), and [NewHTTPProvider] the ready-made fake provider:
//
//	func TestContract(t *testing.T) {
//		channelstest.Run(t, channelstest.Harness{
//			New: func(t *testing.T, a channelstest.Answer, logger *slog.Logger) channelstest.Target {
//				p := channelstest.NewHTTPProvider(t, a)
//				ch := newChannel(t, logger) // own timeouts longer than HangLimit
//				return channelstest.Target{Channel: ch, Endpoint: channels.Endpoint{Address: p.URL + "?token=tok_s3cr3t"}, Attempts: p.Requests}
//			},
//			Cases:   channelstest.HTTPCases(),
//			Secrets: []string{"tok_s3cr3t"},
//		})
//	}
//
// Timing: the hanging-provider case gives Send a short context deadline
// ([Harness.Deadline]) and waits at most [Harness.HangLimit] for it to
// return. That bound is a liveness check, not a performance threshold: a
// Send that honours its context returns right after the deadline. The
// constructor must give the channel its own timeouts longer than HangLimit,
// so that the suite tells the two apart.
package channelstest
