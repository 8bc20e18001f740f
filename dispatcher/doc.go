// Package dispatcher is Herald's engine: it sets up the JetStream streams and
// KV buckets, fans each incident update out to its audience, delivers each
// notification through its channel with retries, records every attempt, and
// serves the HTTP API.
//
// # Pipeline
//
// Incident updates arrive on the INCIDENTS stream (subject
// incidents.<incident_id>, Nats-Msg-Id = event id). The fan-out consumer
// ([Fanout]) reads them one at a time, in order:
//
//	decode → validate → snapshot check → audience → publish jobs → snapshot → ack
//
// A bad event goes to the DEAD_LETTERS stream with its reason and the line
// moves on. The incident snapshot (KV "incidents") records which sequences
// were fanned out, so an update re-published after the stream's duplicate
// window is recognised and not fanned out twice. Each job (one per update ×
// endpoint) gets a deterministic id, hash(event id, subscriber id, endpoint
// id), used as its Nats-Msg-Id; the event is acknowledged only after every
// job publish is acknowledged.
//
// Jobs land on the DELIVERIES work-queue stream (subject
// deliveries.<channel>). One delivery loop per channel ([Deliverer]) runs
// each job through small stages:
//
//	decode → already done? → resolve endpoint → skip checks → render → send → record
//
// The outcome of Send decides the job's fate with errors.As on the channels
// package's typed errors: delivered → Ack; retryable → parked for a delay
// computed by the [RetryPolicy] from the attempt number (JetStream's
// consumer BackOff does not apply to NAKs) and any Retry-After hint;
// permanent → Term (and the endpoint disabled or the address suppressed
// when the channel asks). A job whose attempts are exhausted, or that failed
// permanently, is copied to DEAD_LETTERS, from which operators replay it.
//
// A parked job is a copy on parked.<channel> (same stream) carrying its due
// time and attempt count; the original is acknowledged. A second consumer
// per channel holds it until due and hands it to the same loop. Waiting
// with a Nak would keep it in the delivery consumer's pending list, where
// enough of them (failing endpoints, quiet hours) would stop the channel.
// Deferrals are parked the same way: quiet hours, a destination whose
// circuit is open, and a destination whose turn is further than
// MaxDestinationWait (busy or slow; not counted as an attempt).
//
// Every attempt and outcome is appended to the DELIVERY_LOG stream, subject
// deliverylog.<subscriber_id>.<delivery_id>. The last record of a delivery
// is also how a redelivered or replayed job learns it was already sent.
//
// # Promises
//
// The package keeps Herald's promises: nothing is lost once publish returned
// (JetStream acks at every hand-off, acks only after the next stage has
// stored its work), no duplicates from Herald's side (Nats-Msg-Id inside the
// duplicate window, the snapshot and the delivery log beyond it), bad input
// never stops the line (dead letters), one slow endpoint never delays the
// others (per destination: bounded concurrency, a pace, a circuit breaker,
// jobs whose turn is far parked instead of held; retries parked), and
// nothing leaks (no secret in logs or the delivery log; admin API behind a
// token; unsubscribe links sealed).
package dispatcher
