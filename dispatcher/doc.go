// Package dispatcher is Herald's engine: it sets up the JetStream streams and
// KV buckets, fans each incident update out to its audience, delivers each
// notification through its channel with retries, records every attempt, and
// offers the Go methods the admin API, the public pages and the CLI call.
//
// # Fan-out
//
// Incident updates arrive on the INCIDENTS stream (published on
// incidents.<incident_id>, Nats-Msg-Id = event id), which stores each under
// its fan-out partition, incidents.<partition>.<incident_id>. One consumer
// per partition hands out one update at a time over all processes
// ([fanout]): the updates of an incident stay in order, those of different
// incidents fan out at once.
//
//	decode → validate → snapshot decides → audience → publish batches → snapshot → ack
//
// A bad event goes to the DEAD_LETTERS stream with its reason and the line
// moves on. The incident snapshot (KV "incidents") keeps the incident's
// latest update: an update whose sequence is not above it was fanned out
// already (a replay, however old), holds a sequence another event holds (a
// conflict: dead-lettered), or comes late (recorded, sent to nobody).
//
// The targets of an update (one per endpoint) are published per channel in
// batch jobs on DELIVERIES (deliveries.<channel>), about BatchSize targets
// each. Batch membership is fixed at the first fan-out: a target's batch is
// a hash of its subscriber id among a count the snapshot keeps, so a
// resumed fan-out publishes the same batches under the same ids
// ([BatchID], the Nats-Msg-Id), which the stream drops inside its duplicate
// window. Each target keeps its own delivery id ([DeliveryID]): the
// webhook-id, the email Message-ID, the key of its delivery-log records.
//
// # Delivery
//
// One delivery loop per channel ([deliverer]) takes jobs in hand and runs
// each target through the stages of stages.go on a bounded pool of
// workers:
//
//	already done? → resolve → screen → SMS caps → render → turn → pace → send → outcome
//
// "Already done?" is paid only by targets of a job that may have met a copy
// (redelivered, parked, replayed, re-published past the duplicate window):
// they take the delivery's lease (a KV key with a TTL, seen by every
// process) before reading the delivery log. Fresh first deliveries, which
// no copy can meet, skip it. A destination (webhook host, Slack channel,
// provider) gives a bounded number of slots, starting low and growing with
// its answers; targets waiting for one, for a pace (shared by all
// processes through the pacing bucket) or for a retry of Herald's own
// infrastructure hold no worker.
//
// The outcome of Send decides with errors.As on the channels package's
// typed errors: delivered; retryable → parked for a delay computed by the
// [RetryPolicy] from the attempt number and any Retry-After; permanent →
// dead-lettered (and the endpoint disabled or the address suppressed when
// the channel asks). A target that must wait (retry, quiet hours, a busy or
// failing destination, a copy of it in hand elsewhere) leaves its batch as
// a single parked job on parked.<channel>, with its due time and the
// attempts it made; a second consumer per channel brings it back when due.
//
// Every attempt and outcome is one record of the DELIVERY_LOG stream,
// subject deliverylog.<incident>.<subscriber>.<delivery>. A job is
// acknowledged once each of its targets is over and its records, parked
// copies and dead letters are stored (group commit); until then it stays in
// hand and failed writes are retried without limit.
//
// Attempts count sends (and deferrals that count). Trouble of Herald's own
// infrastructure (JetStream, KV, the log) never uses an attempt and never
// dead-letters a notification: the stage is tried again later, a metric
// counts it and readiness turns degraded ([Dispatcher.Troubles]).
//
// # Ledger, progress and recall
//
// The delivery log, one record per target and attempt under
// deliverylog.<incident>.<subscriber>.<delivery>, is also the evidence:
// [Ledger] folds it into one row per notification (the hash of the bytes
// sent, locales, outcome, receipts), streamed with bounded memory one
// incident at a time (ledger.go); [Progress] tells where an incident's
// updates stand per channel from the same subjects, incrementally
// (progress.go); [Dispatcher.Recall] cancels what an update has not sent
// yet, through a marker every process mirrors and checks at screening and
// before the send, and records the rest recalled at once (recall.go).
//
// # Promises
//
// The package keeps Herald's promises: nothing is lost once publish returned
// (JetStream acks at every hand-off, acks only after the next stage has
// stored its work), no duplicates from Herald's side (Nats-Msg-Id inside the
// duplicate window, the snapshot, leases and the delivery log beyond it),
// bad input never stops the line (dead letters), one slow endpoint never
// delays the others (per-destination slots and queues, paces, breakers,
// targets whose turn is far parked instead of held), nothing leaks (no
// secret in logs or the delivery log), and all of it holds with several
// processes on a JetStream cluster (leases, global paces and rates,
// durable consumers shared).
package dispatcher
