package channels

import (
	"fmt"
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

// HTTPStatusError classifies an HTTP answer the way Herald treats webhook and
// provider endpoints: nil for 2xx; retryable for 408, 425, 429 and 5xx
// (honouring Retry-After); a disabling permanent error for 410 Gone; a
// permanent error for any other status, 3xx included (redirects are not
// followed). message is a short, secret-free description of the body.
func HTTPStatusError(status int, header http.Header, message string, now time.Time) error {
	if status >= 200 && status < 300 {
		return nil
	}
	pe := &ProviderError{Status: status, Message: message}
	switch {
	case status == http.StatusGone:
		return Disable(pe)
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout ||
		status == http.StatusTooEarly || status >= 500:
		after, _ := ParseRetryAfter(header.Get("Retry-After"), now)
		return RetryAfter(after, pe)
	case status >= 300 && status < 400:
		pe.Message = strings.TrimSpace(fmt.Sprintf("redirect not followed %s", pe.Message))
		return Permanent(pe)
	}
	return Permanent(pe)
}
