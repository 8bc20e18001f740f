// Package email is Herald's email channel: it submits each rendered
// notification to an SMTP server (the operator's relay or an email
// provider's submission endpoint) with github.com/wneessen/go-mail.
//
// # The message
//
// Every message is multipart/alternative, a UTF-8 text part and an HTML part
// (quoted-printable), with:
//
//   - From (Config.From), Reply-To (Config.ReplyTo, or the message's own),
//     To (the endpoint's address with its display name), Subject (RFC 2047
//     encoded when it is not ASCII: "é" travels as =C3=A9), Date;
//   - Message-ID: <delivery-id@from-domain> (see [MessageID]): a retry of
//     the same delivery carries the same id, so mailbox providers and
//     people see one message, not two;
//   - Auto-Submitted: auto-generated (RFC 3834), so auto-responders stay
//     quiet; List-Id (RFC 2919), Feedback-ID (Gmail's complaint
//     reporting) and Content-Language;
//   - the message's own headers as given, notably List-Unsubscribe with an
//     https URL and a mailto address, and List-Unsubscribe-Post:
//     List-Unsubscribe=One-Click (RFC 8058), which Gmail and Yahoo require
//     of bulk senders. A header value holding CR or LF (or any other
//     control character but tab) is refused, since it would let a value
//     inject headers.
//
// A [Renderer] produces these bytes; the channel submits what its renderer
// gives, and package outbox writes what one gives to its .eml files.
//
// # Who sets which header
//
// The channel owns the headers of the transport and of the message's
// identity: From, Sender, To, Cc, Bcc, Subject, Date, Message-ID,
// MIME-Version, Content-Type, Content-Transfer-Encoding, DKIM-Signature,
// Return-Path and Received. A message whose headers set one of them is
// refused.
//
// The message's headers own what depends on the recipient or the content:
// List-Unsubscribe and List-Unsubscribe-Post, and any other header
// (X-Auto-Response-Suppress…). In Herald, package templates writes them.
//
// Five headers have defaults, which a message header of the same name
// overrides:
//
//	Reply-To          Config.ReplyTo
//	Auto-Submitted    auto-generated
//	List-Id           Config.ListID, in angle brackets when bare
//	Feedback-ID       "[<incident id>:]<mail type>:<Config.FeedbackID>"
//	Content-Language  Message.Locale, when a language tag
//
// So a program using this package alone gets all of them from the
// configuration. Herald's templates write Auto-Submitted, List-Id,
// Feedback-ID and Content-Language themselves, in the same formats, since
// they know the incident and the language; the channel's defaults then
// only matter for messages not rendered by them.
//
// Feedback-ID follows Gmail's feedback loop: at most four colon-separated
// identifiers read from the right, the right-most the sender id (the same
// for the whole mail stream), the others reported on independently. The
// incident id (one announcement to many readers, never one recipient) and
// the mail type, "incident-<status>" for an incident update or
// "notice-<kind>" for a service message, give complaints per incident and
// per type: "TSR-1610:incident-monitoring:herald",
// "notice-endpoint.disabled:herald".
//
// # DKIM
//
// With Config.DKIM set, every message is signed with
// github.com/emersion/go-msgauth (RFC 6376, relaxed/relaxed, rsa-sha256 or
// ed25519-sha256; go-mail's own signer folds long h= lists inside header
// names, which verifiers reject) over From, Reply-To, To, Subject, Date,
// Message-ID, MIME-Version, Content-Type, Content-Language, Auto-Submitted,
// List-Id, List-Unsubscribe, List-Unsubscribe-Post, Feedback-ID and the
// message's own headers; From, To, Subject, Date, Message-ID, Reply-To and
// the List-* headers are oversigned, so that a copy added in transit breaks
// the signature. The signing domain must be From's domain or a parent of
// it, for DMARC alignment.
//
// The receiving servers look the public key up in DNS: publish a TXT
// record named <selector>._domainkey.<domain> whose value is
//
//	v=DKIM1; k=rsa; p=<the public key: base64 of its DER SubjectPublicKeyInfo>
//
// (k=ed25519 and p=<base64 of the 32-byte key> for an Ed25519 key).
// [DKIM.DNSRecord] computes both name and value from the configured private
// key. A 2048-bit RSA value exceeds 255 bytes: zone files split it into
// several quoted strings, which verifiers join:
//
//	herald2025._domainkey.herald.example. IN TXT ( "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA..."
//	        "...IDAQAB" )
//
// To rotate a key, publish the new selector's record, wait for the old
// record's TTL, switch the configuration, and remove the old record a few
// days later. Publish SPF and DMARC records for the From domain too.
//
// # Connections
//
// The channel keeps Config.Pool connections (4 by default), each opened on
// demand — TCP, EHLO, STARTTLS or implicit TLS, AUTH — and reused for the
// next messages: one dial serves up to Config.MaxPerConnection messages.
// A connection idle for Config.IdleTimeout is closed; one idle for a few
// seconds is checked with NOOP before use, and one whose last transaction
// was refused is reset with RSET, so that a stale connection costs a
// redial, never a failed send. Pool also bounds how many messages are in
// flight; Config.Rate bounds how many leave per second.
//
// STARTTLS is mandatory in the default mode: Herald never sends credentials
// or mail in clear text to a server that stops offering it. Credentials
// without TLS are refused.
//
// # Outcomes
//
// Send makes one attempt; the dispatcher owns retries. The server's reply
// decides (RFC 5321 codes, RFC 3463 enhanced codes):
//
//	2xx                                 delivered; ProviderID is the queue id
//	                                    of the reply ("queued as 4BB8B3F5C2")
//	4xx (421, 450, 451 4.7.1, 452…)      retryable on the dispatcher's schedule
//	5xx 5.1.1 5.1.2 5.1.3 5.1.6 5.1.10  permanent, address suppressed: bad
//	                                    mailbox or domain (to RCPT TO or DATA)
//	5xx 5.2.2, bare 552 to RCPT TO       retryable: mailbox full
//	5xx 5.7.x and any other 5xx         permanent for this message only
//	5xx while connecting (AUTH…)        retryable: the relay or Herald's
//	                                    configuration is at fault, not the
//	                                    message; logged as a warning
//	connection refused, lost, timeout   retryable
//	invalid address                     permanent, endpoint disabled
//	invalid message or header           permanent
//
// The reply code and enhanced code are recorded in a
// [channels.ProviderError]. Only recipient answers suppress an address:
// 5.1.7 and 5.1.8 concern the sender, and 5.1.0 is what Postfix answers to
// RCPT TO when it rejects the sender. A reply lost after the whole message
// was sent (a timeout waiting for the final 250) is retried and may then
// arrive twice; it carries the same Message-ID both times.
//
// Errors and logs never hold the SMTP password or the AUTH exchange: the
// server's text is summarised on one line of at most 256 bytes and scrubbed
// of the credentials.
package email
