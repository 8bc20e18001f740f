// Package templates renders incident updates and service notices for
// every channel (email, SMS, Slack, webhook) in the subscriber's language.
//
//	r, err := templates.New(templates.Config{Dir: "/etc/herald/templates", StatusPageURL: "https://status.example.com"})
//	out, err := r.Render(templates.Update{Event: ev, AcceptedAt: t}, "email",
//		templates.Recipient{Locale: "fr-BE", Location: paris, Name: "Boulangerie Dupont", UnsubscribeURL: link})
//	// out.Subject, out.Text, out.HTML, out.Headers; out.Locale == "fr"
//
// # Languages
//
// The supported locales are those with a message catalog: French, English
// and Italian are embedded (defaults/fr.toml, en.toml, it.toml); an
// override directory may add more. A subscriber's BCP 47 tag is matched
// with golang.org/x/text/language (fr-BE → fr, it-CH → it, en-GB → en);
// a tag that matches none falls back through Config.Fallback (en, then fr).
// Everything Herald writes (greeting, labels, status, components, dates,
// footer) is in the reader's language. When the update has no text in it,
// only the provider's own text (title and body) comes in the first
// language of the fallback chain the update has; the email then says so in
// the reader's language, naming the text's language ("Ecco il testo
// originale, in francese."), marks the text with its own lang attribute in
// HTML, and lists both languages in Content-Language ("it, fr").
// [Rendered] records both languages (Frame, Locale), the tag requested,
// the matcher's confidence and whether a fallback happened.
//
// Texts come per locale when the event gives them so ({"fr": …, "en": …});
// a single string holding several languages, as the status page writes
// them, is split into per-language parts by package multilingual (markers
// such as "FR … EN …" and "==============ENGLISH VERSION==============",
// and language identification restricted to the supported locales for
// text without a marker), and its shared header ("TSR-1723 - Début /
// Start / Inizio : 03/05/2025 - …") is parsed into fields shown in the
// locale's words and date format rather than raw. A body whose language
// cannot be told is sent whole in every language; so is a title. A title
// in languages other than the message's is replaced by one written from
// the catalog ("Incident affecting E-commerce payments"). A header value
// given in some languages only ("Authentification 3D Secure / 3DS
// authentication") is shown in the fallback chain's language elsewhere.
//
// # Bodies
//
// Bodies are Markdown, rendered with goldmark: to HTML for email (inline
// styles, raw HTML dropped, only http(s) links, images turned into links so
// that no remote resource is loaded), to plain text for the email text
// part and SMS (tables as "- Header: cell" rows), and to Slack mrkdwn
// (headings as bold lines, <url|text> links, &, < and > escaped). One-line
// Markdown whose line breaks were lost by the status page's export gets its
// structure back first (headings, list items, bold labels, tables).
// Bodies longer than Config.MaxBodyRunes are cut on a block or word
// boundary and end with a link to the full update.
//
// # Channels
//
//   - email: Subject (one line), Text and HTML parts (table layout, inline
//     CSS, no external resources, a plain-language summary first: status,
//     services, start time), and Headers (List-Unsubscribe with the https
//     link and, if configured, mailto; List-Unsubscribe-Post One-Click;
//     List-Id; Auto-Submitted; Feedback-ID
//     "[<incident id>:]<mail type>:herald"; Content-Language). These
//     override the email channel's defaults for the same headers, which
//     follow the same formats (see package email); the channel writes
//     From, To, Subject, Date, Message-ID and the MIME headers itself.
//   - sms: Text within Config.SMSSegments segments, counted exactly by
//     package gsm7: transliterated to GSM-7 when that keeps the meaning,
//     else the body (then the title) shortened on a word boundary; the
//     link is never cut.
//   - slack: Body is the Block Kit message of the update ({"text", "blocks"}:
//     title with a status emoji, summary, fields for status, priority,
//     services, start, end, update time and reference, the body in mrkdwn
//     split over sections of at most 3000 characters and at most 50 blocks,
//     link); Parent is the incident's living parent message (current
//     status, marked resolved with ✅ once resolved, post-mortem or
//     completed). Text is the fallback text.
//   - webhook: Body is the JSON payload described below.
//
// # Webhook payload
//
// Payloads follow the Standard Webhooks convention {"type", "timestamp",
// "data"} and are deterministic for an update and a locale (see
// testdata/golden/*.webhook.json for complete examples):
//
//	{
//	  "type": "incident.updated",
//	  "timestamp": "2025-05-03T14:11:00Z",      // published_at, UTC
//	  "data": {
//	    "schema_version": 1,
//	    "event_id": "TSR-1723:1",
//	    "incident_id": "TSR-1723",
//	    "sequence": 1,
//	    "status": "monitoring",                 // incident status id
//	    "status_label": "Sous surveillance",    // in data.locale
//	    "closed": false,                        // resolved, postmortem or completed
//	    "priority": "P2",                       // or null
//	    "components": [{"id": "oney", "name": "Paiement Oney"}], // [] = whole platform
//	    "locale": "fr",                         // the recipient's matched locale (labels and names are in it)
//	    "title": {"fr": "…", "en": "…", "it": "…"}, // per language the update has
//	    "body":  {"fr": "…", "en": "…", "it": "…"}, // Markdown, per language
//	    "original": {"title": "…", "body": "…"},    // as published (string or object)
//	    "header": {                             // or null when the body has none
//	      "reference": "TSR-1723",
//	      "start": "2025-05-03",                // "YYYY-MM-DD" or RFC 3339, or null
//	      "start_text": "03/05/2025",
//	      "end": null, "end_text": "En cours / Ongoing / In corso",
//	      "ongoing": true,
//	      "category": {"fr": "…", "en": "…"},   // per language ("" = all)
//	      "responsibility": {"fr": "…"},
//	      "priority": "P1"
//	    },
//	    "url": "https://status.example.com/incidents/TSR-1723", // or null
//	    "started_at": "2025-05-03T09:12:00+02:00", // or null
//	    "published_at": "2025-05-03T14:11:00Z",
//	    "truncated": false                      // true when bodies were cut to stay under 20 kB
//	  }
//	}
//
// A maintenance's payload adds its window (scheduled_for, scheduled_until)
// and, once called off, "cancelled": true; the update that moved the
// window adds "rescheduled": true with previous_scheduled_for and
// previous_scheduled_until. A reminder of a maintenance ([Update.Reminder])
// has the type "maintenance.reminder", the timestamp at which it was due,
// the data of the update that announced the maintenance, and
// "reminder": {"lead_seconds": 86400}.
//
// When the update's language cannot be determined, title and body hold the
// whole text under data.locale. Payloads stay under [WebhookMaxBytes]:
// the longest bodies are cut, ending with the update's link. A service
// notice has the type of its kind ("endpoint.disabled") and data
// {schema_version, endpoint_id, channel, reason, disabled_at, locale,
// message}.
//
// # Templates and catalogs
//
// The defaults are embedded; Config.Dir overrides them file by file:
//
//	email.subject.tmpl, email.txt.tmpl, sms.txt.tmpl, notice.subject.tmpl,
//	notice.txt.tmpl        text/template
//	email.html.tmpl, notice.html.tmpl        html/template (contextual escaping)
//	fr.toml, en.toml, it.toml, <locale>.toml message catalogs
//
// Templates run with missingkey=error, so a template naming a catalog key
// that does not exist fails. New parses every file and renders sample
// updates in every locale and channel, so a broken override is rejected at
// start with its file and line ([CatalogError], [TemplateError]), never at
// send time. A catalog override only needs the keys it changes; keys that
// do not exist are rejected. A new locale's catalog needs every key, with
// the same {placeholders} as en.toml.
//
// Update templates receive:
//
//	.T              the catalog: {{.T.email.unsubscribe}}, {{.T.field.status}}
//	.Tr KEY [NAME VALUE]...  a catalog string with {placeholders} filled
//	.Lang           the message's language ("fr")
//	.Subject        the rendered subject (email text and HTML)
//	.Title          the update's title in .Lang (or one written from the catalog)
//	.Status .StatusLabel .Color .Emoji .Closed .Maintenance
//	.Priority .PriorityLabel   "P1", "P1 - Critique" (empty when unknown)
//	.Components .ComponentList  display names; "A, B et C" or "toute la plateforme"
//	.Summary        one plain-language sentence (status and services)
//	.Started .Ended .Updated    dates in the locale's format and the recipient's zone
//	.Ongoing        the header says the incident is not over
//	.Reference .Category .Responsibility
//	.Body           plain text; .BodyHTML the HTML (email only)
//	.Truncated      the body was cut; .URL links to the full update ("" if none)
//	.Fallback       the update is not in the recipient's language
//	.FallbackNote   the note saying so, in .Lang, naming the text's language
//	.TextLang       the language of .Title and .Body when it is not .Lang
//	.Window         a maintenance's window in the reader's words and zone ("" for an incident)
//	.PreviousWindow the window a rescheduling moved
//	.Reminder .Rescheduled .Cancelled   how a maintenance update is presented; they
//	                replace .StatusLabel and .Summary ("Maintenance in 24 hours")
//	.Left           in a reminder, the time until the window in words ("24 hours")
//	.Recipient.Name .Recipient.UnsubscribeURL .Recipient.PreferencesURL
//
// Notice templates receive .T, .Tr, .Lang, .Kind, .Subject, .Body,
// .Action, .Endpoint, .Channel, .Reason, .At and .Recipient.
//
// # Maintenance
//
// An update carrying a window (scheduled_for, scheduled_until) shows it on
// every channel. [Update.Reminder] presents the update that announced a
// maintenance as a reminder of it ("Maintenance in 24 hours"), saying the
// time left when it is rendered; [Update.Previous] presents an update that
// moved the window as a rescheduling, showing both windows; a cancelled
// maintenance is worded as such. Emails about a maintenance carry its
// iCalendar event (see [CalendarFilename]).
//
// # Caching
//
// The split and parsed update is cached per update content; each rendering
// per (update, language, channel, time zone, recipient shape) in a bounded
// LRU (Config.CacheSize). The recipient's name and links are placeholders
// in the cached rendering, replaced per recipient.
package templates
