package sms

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"

	twclient "github.com/twilio/twilio-go/client"

	"github.com/heraldhq/herald/channels"
)

// Twilio error codes Send and [Callback.Err] treat specially. Every other
// code is recorded as it comes, in a [channels.ProviderError].
const (
	// CodeInvalidNumber: the 'To' number is not a valid phone number.
	CodeInvalidNumber = 21211
	// CodeUnsubscribed: the recipient replied STOP; Twilio refuses to
	// send to it until it replies START.
	CodeUnsubscribed = 21610
	// CodeQueueFull: the sender's queue is full; retry later.
	CodeQueueFull = 21611
	// CodeNotMobile: the 'To' number is not a mobile number.
	CodeNotMobile = 21614
	// CodeTooManyRequests: the account exceeded its API concurrency.
	CodeTooManyRequests = 20429
	// CodeUnknownDestination (callbacks): the carrier does not know the
	// number.
	CodeUnknownDestination = 30005
	// CodeLandline (callbacks): a landline, or a carrier that cannot be
	// reached.
	CodeLandline = 30006
)

// summaryRunes is the longest provider message kept in an error.
const summaryRunes = 200

// refusal classifies a non-2xx answer: by Twilio's error code first, then by
// HTTP status.
func (c *Channel) refusal(x *exchange, err error, now time.Time) error {
	status := x.resp.StatusCode
	pe := &channels.ProviderError{Status: status}
	code := 0
	var te *twclient.TwilioRestError
	if errors.As(err, &te) && (te.Code != 0 || te.Message != "") {
		code = te.Code
		pe.Message = channels.Printable(channels.Redact(te.Message, false, c.redact...), summaryRunes)
	} else {
		head := x.head()
		pe.Message = channels.Printable(channels.Redact(string(head), len(head) >= headBytes, c.redact...), summaryRunes)
	}
	if code != 0 {
		pe.Code = strconv.Itoa(code)
	}
	if pe.Message == "" {
		pe.Message = http.StatusText(status)
	}
	switch code {
	case CodeInvalidNumber, CodeNotMobile:
		return channels.Disable(pe)
	case CodeUnsubscribed:
		return channels.Suppress(pe)
	case CodeTooManyRequests, CodeQueueFull:
		after, _ := channels.ParseRetryAfter(x.resp.Header.Get("Retry-After"), now)
		return channels.RetryAfter(after, pe)
	}
	// By status: 410 included, permanent without disabling (a Gone from
	// Twilio's API is about the API, not the subscriber's number).
	return channels.StatusOutcome(pe, x.resp.Header, now)
}

// credentialForms lists the forms in which the configured credentials could
// come back in an answer (a proxy or a broken server echoing the request).
func credentialForms(cfg Config) []string {
	var out []string
	add := func(user, pass string) {
		if pass == "" {
			return
		}
		out = append(out, pass, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	add(cfg.AccountSID, cfg.AuthToken.Reveal())
	add(cfg.APIKey, cfg.APISecret.Reveal())
	return out
}
