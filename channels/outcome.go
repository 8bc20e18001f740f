package channels

import (
	"errors"
	"fmt"
	"time"
)

// Action is what the dispatcher must do, besides not retrying, after a
// permanent failure.
type Action int

const (
	// NoAction: the failure concerns this message only.
	NoAction Action = iota
	// DisableEndpoint: the endpoint is gone (HTTP 410, Slack
	// channel_not_found, an invalid phone number): disable it and tell
	// the subscriber.
	DisableEndpoint
	// SuppressAddress: the address must not be used again for a while
	// (SMTP 5.1.x bad mailbox, SMS STOP): add it to the suppressions.
	SuppressAddress
)

// String names the action for logs and the delivery log.
func (a Action) String() string {
	switch a {
	case DisableEndpoint:
		return "disable_endpoint"
	case SuppressAddress:
		return "suppress_address"
	}
	return "none"
}

// PermanentError marks a failure that retrying cannot fix.
type PermanentError struct {
	// Err is the underlying failure.
	Err error
	// Action is what the dispatcher must do besides not retrying.
	Action Action
}

// Permanent marks err as a failure that retrying cannot fix. Permanent(nil)
// returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Disable marks err as permanent and asks for the endpoint to be disabled.
func Disable(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err, Action: DisableEndpoint}
}

// Suppress marks err as permanent and asks for the address to be added to
// the suppressions.
func Suppress(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err, Action: SuppressAddress}
}

// Error returns the underlying error's text.
func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *PermanentError) Unwrap() error { return e.Err }

// RetryError marks a failure worth retrying, not sooner than After.
type RetryError struct {
	// After is the provider's minimum delay before the next attempt
	// (Retry-After); 0 leaves the delay to the retry policy.
	After time.Duration
	// Err is the underlying failure.
	Err error
}

// RetryAfter marks err as retryable not sooner than d (d <= 0: whenever the
// retry policy says). RetryAfter(d, nil) returns nil.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	if d < 0 {
		d = 0
	}
	return &RetryError{After: d, Err: err}
}

// Error returns the underlying error's text and the delay hint.
func (e *RetryError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("retry after %s: %v", e.After, e.Err)
	}
	return "retry: " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *RetryError) Unwrap() error { return e.Err }

// Classification is the dispatcher's reading of a Send error.
type Classification struct {
	// Permanent is true when the failure must not be retried.
	Permanent bool
	// Action applies to permanent failures.
	Action Action
	// After is the minimum delay before a retry (0: policy decides).
	After time.Duration
}

// Classify reads err's outcome with errors.As: permanent (with its action)
// if a [*PermanentError] is anywhere in its chain, otherwise retryable with
// the delay hint of a [*RetryError] if there is one, otherwise retryable on
// the policy's schedule. Classify(nil) returns the zero Classification.
func Classify(err error) Classification {
	var pe *PermanentError
	if errors.As(err, &pe) {
		return Classification{Permanent: true, Action: pe.Action}
	}
	var re *RetryError
	if errors.As(err, &re) {
		return Classification{After: re.After}
	}
	return Classification{}
}

// ProviderError is a provider's refusal, with the code the delivery log
// records. Channels wrap it with [Permanent] or [RetryAfter].
type ProviderError struct {
	// Status is the transport status (HTTP status, SMTP reply code).
	Status int
	// Code is the provider's own error code ("21211", "5.1.1",
	// "channel_not_found"), when it gives one.
	Code string
	// Message is the provider's explanation, trimmed and secret-free.
	Message string
}

// Error returns "status code: message" with the parts that are set.
func (e *ProviderError) Error() string {
	s := ""
	if e.Status != 0 {
		s = fmt.Sprintf("status %d", e.Status)
	}
	if e.Code != "" {
		if s != "" {
			s += " "
		}
		s += "code " + e.Code
	}
	if e.Message != "" {
		if s != "" {
			s += ": "
		}
		s += e.Message
	}
	if s == "" {
		s = "provider refused the message"
	}
	return s
}
