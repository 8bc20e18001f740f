package email

import (
	"github.com/heraldhq/herald/channels"
)

// stage is the step of an SMTP exchange that a reply answers.
type stage int

const (
	// stageConnect: dial, greeting, EHLO, STARTTLS, AUTH, and the NOOP or
	// RSET that readies a kept connection.
	stageConnect stage = iota
	// stageMail: MAIL FROM.
	stageMail
	// stageRcpt: RCPT TO.
	stageRcpt
	// stageData: the DATA command.
	stageData
	// stageEnd: the reply to the message content.
	stageEnd
)

// String names the stage for errors and logs.
func (s stage) String() string {
	switch s {
	case stageMail:
		return "MAIL FROM"
	case stageRcpt:
		return "RCPT TO"
	case stageData:
		return "DATA"
	case stageEnd:
		return "end of data"
	}
	return "connect"
}

// outcome classifies a failure reply r to stage st (see the package
// documentation for the table):
//
//   - 4xx: retryable on the dispatcher's schedule;
//   - 5xx while connecting (greeting, EHLO, STARTTLS, AUTH): retryable,
//     since it concerns Herald's relay and its configuration, not this
//     message;
//   - 5xx with an enhanced code saying the recipient's mailbox or domain
//     does not exist: permanent, and the address is suppressed;
//   - 5.2.2 (mailbox full), and a bare 552 to RCPT TO (RFC 5321 section
//     4.5.3.1.10): retryable;
//   - any other 5xx (5.7.x policy and spam blocks included): permanent for
//     this message, the address is kept;
//   - anything else (a 2xx or 3xx where the protocol wants another
//     code): retryable.
//
// The [channels.ProviderError] inside records the code and the enhanced
// code.
func outcome(st stage, r reply) error {
	pe := &channels.ProviderError{Status: r.Code, Code: r.Enhanced.String(), Message: r.Text}
	switch {
	case r.Code < 500 || r.Code > 599:
		return channels.RetryAfter(0, pe)
	case st == stageConnect:
		return channels.RetryAfter(0, pe)
	case badRecipient(st, r.Enhanced):
		return channels.Suppress(pe)
	case r.Enhanced == enhancedCode{5, 2, 2},
		r.Code == 552 && r.Enhanced.IsZero() && st == stageRcpt:
		return channels.RetryAfter(0, pe)
	}
	return channels.Permanent(pe)
}

// badRecipient reports whether the enhanced code says that the recipient's
// address is unusable (RFC 3463 section 3.2): 5.1.1 bad destination
// mailbox, 5.1.2 bad destination system (no such domain), 5.1.3 bad
// destination mailbox syntax, 5.1.6 mailbox has moved, 5.1.10 null MX (RFC
// 7505). Only answers about the recipient count: to RCPT TO, DATA or the
// message. The other 5.1.x codes do not suppress the address: 5.1.7 and
// 5.1.8 are about the sender, and servers use 5.1.0 for sender problems
// reported at RCPT TO (Postfix's "Sender address rejected").
func badRecipient(st stage, ec enhancedCode) bool {
	if st != stageRcpt && st != stageData && st != stageEnd {
		return false
	}
	if ec.Class != 5 || ec.Subject != 1 {
		return false
	}
	switch ec.Detail {
	case 1, 2, 3, 6, 10:
		return true
	}
	return false
}
