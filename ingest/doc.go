// Package ingest turns the status page a provider already runs into
// Herald's incident events (schema v1, package incident) and publishes them
// through the same path as `herald publish`: one event per update, its id
// the source's own id, so that publishing again is idempotent.
//
// Three sources:
//
//   - [StatuspageHandler] receives Atlassian Statuspage webhooks on
//     POST /ingest/statuspage/{token}. Statuspage does not sign its
//     webhooks: the token in the URL is the authentication, compared in
//     constant time. An incident payload becomes one event per incident
//     update not seen before; component-only payloads are logged and
//     ignored.
//   - [StatuspagePoller] reads a page's public API (/api/v2/incidents.json
//     and /api/v2/scheduled-maintenances.json) at an interval, with
//     conditional requests and a backoff on errors.
//   - [FeedPoller] reads an Atom or RSS feed (Instatus, Better Stack,
//     Cachet, cState...) and turns each entry, and each revision of an
//     entry, into an event with a stable id derived from the entry id.
//
// [Mapping] converts what Statuspage says into Herald's terms: its
// components (by code or name) to catalog component ids, its impact to a
// priority, its statuses to Herald's (a maintenance's verifying is
// in_progress; a maintenance completed before its window opened is
// cancelled).
//
// What has been published is remembered in a JetStream key-value bucket
// ([Store]), shared by every Herald process: per incident, which updates
// were published under which sequence. A source claims the updates it is
// about to publish with a compare-and-set write before publishing them, so
// two processes receiving or polling the same page never both publish an
// update, and a process that died between claim and publish leaves a claim
// that expires and is taken over (publishing is idempotent by event id, so
// the rare overlap notifies nobody twice). Pollers also take a lease in
// the same bucket, so one process polls a source at a time, and keep their
// cursor there (ETag, Last-Modified, last poll and error), so a restart or
// another process resumes with conditional requests. [Sources] reports
// every source's state for GET /v1/sources.
package ingest
