// Package broker gives Herald its NATS JetStream connection: either an
// embedded nats-server storing JetStream data under Herald's data directory
// (the default, so one binary runs the whole system), or a connection to an
// external server or cluster given by URL, with credentials and TLS.
//
// The embedded server is guarded by a lock file in the data directory, so
// that only one process owns the store at a time. It can listen on a
// loopback port, protected by a token written next to the store, so that
// `herald` CLI commands reach the running server: [Open] with the same data
// directory connects to the running embedded server when there is one, and
// starts its own in-process server otherwise.
package broker
