// Package portal serves Herald's public pages, on a listener of their own
// (herald serve --public-listen), apart from the admin API:
//
//	GET/POST /subscribe             subscribe by email and/or SMS (double opt-in)
//	GET/POST /confirm/{token}       confirm an email address (the link mailed, 7 days)
//	GET/POST /confirm-code          confirm a phone number with the code sent by SMS
//	GET/POST /manage                ask for a link to the preference centre (1 hour, once)
//	GET/POST /manage/{token}        open the preference centre from a link
//	GET      /manage                the preference centre itself (with a session)
//	POST     /manage/...            change preferences, pause, add/remove addresses,
//	                                webhooks (test event, secret rotation), delete
//	GET/POST /follow/{incident_id}  follow one incident by email until it is resolved
//	GET/POST /unsubscribe/{token}   unsubscribe; one-click POST per RFC 8058
//	GET      /static/portal.css
//
// Pages are rendered on the server with html/template and need no
// JavaScript; they are localized (en, fr, it) from the "lang" parameter
// (the language switch), the subscriber's locale or Accept-Language.
//
// # Safety
//
// Nothing is sent to an address before its owner confirmed it: pending
// endpoints are kept out of audiences by package subscribers, and the only
// messages they get are the confirmations, queued through the delivery
// pipeline ([dispatcher.Dispatcher.SendNotice]). Answers never tell
// whether an address is known. Links are sealed by package links (purpose,
// expiry, the address they were sent to); single-use links are recorded
// when used. Every form carries a CSRF token bound to a cookie and is
// refused from other origins; cookies are Secure (unless the public URL
// is plain http on a host other than localhost), HttpOnly and SameSite.
// Rate limits per client IP, per address and per phone-number prefix are
// kept in a JetStream KV bucket, so they hold across processes; the daily
// SMS caps of the dispatcher apply to confirmation codes too. Pages carry a
// strict Content-Security-Policy (no script at all), frame-ancestors
// 'none' and Referrer-Policy: no-referrer.
//
// Endpoints added here go through the same validation as the admin API
// (subscribers.Rules: the SSRF guard for webhook URLs, mobile numbers of
// the allowed countries, Slack incoming-webhook URLs).
package portal
