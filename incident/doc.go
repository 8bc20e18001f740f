// Package incident defines version 1 of the incident update event that Herald
// consumes: its JSON form, its strict decoding and its validation.
//
// The package depends on nothing else in Herald so that producers (a status
// page, an operator's script) can import it to build and validate events
// without pulling in the dispatcher:
//
//	ev, err := incident.Decode(data, incident.DefaultMaxBytes)
//	if err != nil {
//		var fe incident.FieldErrors
//		if errors.As(err, &fe) { /* report fe[0].Field */ }
//	}
//
// Decoding is strict: unknown fields, trailing data and events larger than
// the configured limit are rejected, and every validation problem names the
// offending field ("status: must be one of ...").
package incident
