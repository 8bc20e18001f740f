// Command herald runs Herald, the incident notification dispatcher, and
// administers it: publish updates and watch them go out, recall one,
// export the ledger, manage subscribers, inspect and replay dead letters,
// lift suppressions, preview messages.
//
//	herald serve                      run the dispatcher and the HTTP API
//	herald publish FILE|-             publish updates (JSON or JSONL); --wait shows their progress
//	herald recall EVENT_ID            cancel what an update has not sent yet
//	herald ledger export              one row per notification (CSV or JSON lines)
//	herald subscribers import FILE    import subscribers (JSONL or CSV)
//	herald subscribers list|get|rm    read and remove subscribers
//	herald dlq list|replay            inspect and replay dead letters
//	herald suppressions list|rm       inspect and lift suppressions
//	herald preview                    render a message as a subscriber gets it
//
// Exit status: 0 on success, 1 on a runtime failure, 2 on bad usage or bad
// input (an invalid event or subscriber).
package main
