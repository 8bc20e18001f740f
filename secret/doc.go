// Package secret holds the type Herald uses for every credential it handles
// (webhook signing secrets, provider tokens, the admin token, signing keys),
// so that a secret printed by mistake (fmt, slog) shows as "[redacted]".
//
// JSON encoding redacts too, so that a struct holding a secret can be logged
// or returned by the API without leaking it. Code that must store the real
// value (the subscribers KV bucket) encodes [Value.Reveal] explicitly;
// decoding accepts the real value.
package secret
