// Package webhook is Herald's signed-webhook channel: it POSTs each rendered
// notification (JSON) to the subscriber's URL, signed per the Standard
// Webhooks specification (standardwebhooks.com), so receivers can check it
// came from Herald, unaltered, recently, and only once.
//
// Every request carries:
//
//   - webhook-id: the delivery id, the same on every retry of one
//     notification, for the receiver to deduplicate;
//   - webhook-timestamp: Unix seconds when the attempt was made; receivers
//     refuse timestamps more than 5 minutes off, so each retry is signed
//     afresh;
//   - webhook-signature: "v1,<base64 HMAC-SHA256 of id.timestamp.body>"
//     keyed with the endpoint secret ("whsec_" + base64 of 24 to 64 bytes);
//     during a rotation the endpoint holds two space-separated secrets and
//     the header one signature per secret, space-separated.
//
// Outcomes follow how webhook platforms (Svix, the Standard Webhooks
// guidance) treat answers: a 2xx within the timeout (15 s by default) is a
// delivery; every other answer is a failure retried on the dispatcher's
// schedule, not sooner than its Retry-After: a redirect (never followed), a
// 401 or 404 during a merchant's deploy, a 429 or a 5xx alike. 410 Gone
// disables the endpoint; an operator may list statuses to treat as
// permanent (Config.PermanentStatuses, none by default). Timeouts and
// connection errors are retried. Retries are the dispatcher's business:
// Send makes exactly one attempt. (The dispatcher also disables an
// endpoint that failed every attempt for days.)
//
// Merchants choose the URLs, so connections go through package egress: https
// only by default, no credentials in URLs, no private, loopback, link-local
// or otherwise non-public address (checked on the address dialled), no
// proxy, a bounded read of the answer. A refused address is a permanent
// failure. Errors and log lines name the host only: the URL's path and
// query may hold tokens, and a receiver echoing them in its error page has
// them redacted from the summary Herald keeps.
//
// The channel keeps one connection pool (keep-alive connections and TLS
// sessions reused per host, idle ones bounded and closed), one cache of DNS
// answers, and caches parsed secrets and checked URLs, so sending to the
// same endpoints again allocates little.
package webhook
