package channels

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps the delay a provider can ask for with Retry-After, so a
// hostile or broken header cannot park a delivery for months.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads an HTTP Retry-After value: a number of seconds or an
// HTTP date, relative to now. It reports false when the value is absent or
// malformed. The result is capped at [MaxRetryAfter] and never negative.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 || secs != secs { // negative or NaN
			return 0, false
		}
		if secs > MaxRetryAfter.Seconds() {
			return MaxRetryAfter, true
		}
		d = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, 0), MaxRetryAfter), true
}

// HTTPStatusError classifies the answer of a provider's HTTP API by its
// status alone: nil for 2xx; a disabling permanent error for 410 Gone;
// otherwise [StatusOutcome]. message is a short, secret-free description
// of the body. (Receivers merchants run are judged by the webhook
// channel's own, more patient, policy.)
func HTTPStatusError(status int, header http.Header, message string, now time.Time) error {
	if status >= 200 && status < 300 {
		return nil
	}
	pe := &ProviderError{Status: status, Message: message}
	if status == http.StatusGone {
		return Disable(pe)
	}
	return StatusOutcome(pe, header, now)
}

// RetryableStatus reports whether an HTTP status says "later": 408, 425,
// 429 and 5xx.
func RetryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout ||
		status == http.StatusTooEarly || status >= 500
}

// StatusOutcome is the outcome of a refusal by its HTTP status alone, once
// a provider's own codes have had their say: retryable for
// [RetryableStatus] (honouring Retry-After), permanent otherwise, 3xx
// included (redirects are not followed).
func StatusOutcome(pe *ProviderError, header http.Header, now time.Time) error {
	switch status := pe.Status; {
	case RetryableStatus(status):
		var after time.Duration
		if header != nil {
			after, _ = ParseRetryAfter(header.Get("Retry-After"), now)
		}
		return RetryAfter(after, pe)
	case status >= 300 && status < 400:
		pe.Message = strings.TrimSpace("redirect not followed " + pe.Message)
	}
	return Permanent(pe)
}
