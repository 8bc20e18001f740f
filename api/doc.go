// Package api serves Herald's admin HTTP API over the engine's Go methods
// (package dispatcher):
//
//	POST   /v1/incidents                publish an update (202 once JetStream stored it)
//	GET    /v1/incidents/{id}           the incident's snapshot and live progress per update and channel
//	POST   /v1/incidents/{id}/recall    {"event_id": ...}: cancel what the update has not sent yet
//	PUT    /v1/subscribers/{id}         create or replace a subscriber
//	GET    /v1/subscribers/{id}         read one (secrets masked)
//	DELETE /v1/subscribers/{id}         remove one
//	GET    /v1/subscribers              list, ?after=ID&limit=N
//	GET    /v1/deliveries               delivery log, ?subscriber=ID[&delivery=ID][&since=RFC3339][&limit=N]
//	GET    /v1/ledger                   the ledger streamed, one row per notification (CSV or JSON lines)
//	GET    /v1/deadletters              ?after=SEQ&limit=N
//	POST   /v1/deadletters/{seq}/replay
//	GET    /v1/suppressions
//	DELETE /v1/suppressions/{address}
//	GET    /healthz, /readyz, /metrics
//
// Everything under /v1 requires "Authorization: Bearer <admin token>",
// compared in constant time. Errors are JSON: {"error": "...", "fields":
// [{"field": "...", "message": "..."}]}, with at most
// incident.MaxFieldErrors fields listed and one more counting the others.
// docs/openapi.yaml documents every route; a test keeps the two in step.
//
// The public pages and provider callbacks are not here: package portal
// serves them on a listener of their own.
package api
