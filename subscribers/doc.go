// Package subscribers owns Herald's subscribers: the model (a merchant or
// partner with its preferences and endpoints), its validation, its storage
// in the JetStream key-value bucket "subscribers", the in-memory index that
// resolves the audience of an incident update, and the JSONL / CSV import
// formats.
//
// # Validation
//
// [Rules.Normalize] checks a subscriber and puts it in canonical form: ids of
// 1 to 64 letters, digits, '-' or '_'; a BCP 47 locale (canonicalised); an
// IANA time zone; known component ids; E.164 phone numbers (parsed with a
// libphonenumber port, so "+33 6 12 34 56 78" becomes "+33612345678");
// email addresses; https webhook URLs with a Standard Webhooks "whsec_"
// secret; Slack incoming-webhook URLs or channel ids; quiet hours "HH:MM".
// Every problem is reported at once, as [FieldErrors] naming the JSON path
// of the field at fault ("endpoints[1].address: ...").
//
// # Matching
//
// An endpoint receives an update when every filter passes, each filter being
// the subscriber's narrowed by the endpoint's:
//   - components: an update that names no component concerns the whole
//     platform and reaches everybody; otherwise the (effective) component
//     list must be empty (all components) or share a component with the
//     update;
//   - min_priority: the update's priority must be at least as severe;
//   - statuses: empty means every status.
//
// Disabled endpoints are skipped.
//
// # Index
//
// [Index] keeps, per subscriber, only what matching needs (a component
// bitset, a priority rank and a status mask per endpoint, interned endpoint
// ids) so that a million subscribers fit in a few hundred megabytes and an
// audience is resolved by one linear scan. It is fed by a watch on the KV
// bucket ([Index.Watch]); the full subscriber is read from the store at send
// time ([Store.Lookup], cached by revision).
package subscribers
