// Package links seals and opens the signed links Herald puts in messages
// and pages: one-click unsubscribe, preferences (manage), and address
// confirmation.
//
// A token is a small record — what the link is for, the subscriber and
// endpoint it names, a digest of the address it was sent to, and when it
// expires — encrypted and authenticated with AES-256-GCM under a key
// derived (HKDF-SHA256) from the server's secret. It cannot be forged or
// altered, it reveals nothing, and it opens only for its purpose, before
// its expiry, and for the address it was sent to: after an endpoint's
// address changes, links sent to the old address stop working.
//
// Two keys are accepted so that the secret can be rotated: tokens are
// sealed with the current key and opened with the current or the previous
// one. Keep the previous key configured for as long as the longest-lived
// link (the unsubscribe links' lifetime), then drop it.
package links
