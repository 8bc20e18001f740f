// Package egress makes Herald's outbound HTTP connections to addresses that
// merchants supply (webhook URLs, Slack incoming-webhook URLs) safe against
// server-side request forgery.
//
// A [Policy] says which IP addresses may be reached. By default it refuses
// every address that is not public unicast: the unspecified, loopback,
// private (RFC 1918), carrier-grade NAT, link-local (where cloud metadata
// services live), documentation, benchmarking, multicast, reserved and
// broadcast IPv4 ranges; the IPv6 unspecified, loopback, unique-local,
// link-local, site-local, multicast, documentation, Teredo and ORCHID
// ranges and everything outside global unicast 2000::/3; and the IPv6 forms
// that embed an IPv4 address (IPv4-mapped ::ffff:0:0/96, IPv4-compatible
// ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16), judged on the embedded
// address. An explicit allow-list of prefixes (e.g. 127.0.0.1/32 in tests,
// a partner's private range for an operator) overrides the refusal.
//
// The check runs twice:
//
//   - [Policy.CheckURL] at the edge, for an early and clear error: the URL
//     must be absolute http(s) without credentials; an IP literal host is
//     checked against the policy, and a host written as a non-canonical
//     IPv4 number (2130706433, 0177.0.0.1, 0x7f.0.0.1, 127.1), which a
//     resolver or libc might read as an address, is refused outright;
//   - at dial time, on the address actually connected to: the client from
//     [NewClient] resolves the host once, skips refused addresses, dials
//     the remaining ones as IP literals (no second lookup, so DNS rebinding
//     cannot swap the address), and checks the socket's remote address
//     again in [net.Dialer.ControlContext] just before connect.
//
// The client never follows redirects (a 3xx comes back as the response),
// ignores proxy settings from the environment (a proxy would dial on
// Herald's behalf, past the check), refuses URLs with credentials, and
// bounds connect, TLS handshake and total time (with a deadline on the
// request's context: no goroutine or timer of its own per request).
//
// Many sends in flight to many hosts cost little:
//
//   - keep-alive connections are reused per host; idle ones are bounded
//     per host and in all, and closed after an idle timeout;
//   - TLS sessions are kept per host name in a bounded LRU cache, so a new
//     connection resumes its host's session instead of a full handshake;
//   - DNS answers are kept for their TTL, bounded by a minimum and a
//     maximum, in a bounded cache ([CachingResolver], built on
//     github.com/miekg/dns and asking the servers of /etc/resolv.conf,
//     with the hosts file and "localhost" answered locally and the
//     standard resolver as a fallback); the address dialled is checked
//     whether it came from DNS or from the cache;
//   - [ReadHeadInto] reads the start of a failed answer into a buffer the
//     caller pools, and [DrainClose] discards the rest through io.Discard's
//     pooled buffers, bounded, so the connection can be reused.
//
// Webhooks go through a [Poster] instead of the net/http client: the
// sending goroutine does the whole exchange on a connection from the
// Poster's own per-host pool (one sweeper goroutine closes idle ones), a
// send waiting for its answer holds a 512-byte buffer rather than a header
// reader, dials and TLS handshakes run on a goroutine of their own, and
// fasthttp writes the request and parses the answer. A thousand sends in
// flight to a thousand hosts cost about 20 MB.
//
// [ReadLimited] and [DrainClose] bound how much of a response Herald reads.
//
// Refusals are [*BlockedError] values (address, matched range, reason; never
// the URL), reachable with [errors.As] through the *url.Error and
// *net.OpError wrappers of net/http, so channels classify them as permanent
// failures. Malformed or disallowed URLs wrap [ErrInvalidURL].
package egress
