package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	twclient "github.com/twilio/twilio-go/client"

	"github.com/heraldhq/herald/channels"
)

// CallbackPath is where Herald serves Twilio's status callbacks; the
// configured StatusCallback is Herald's public base URL followed by it.
const CallbackPath = "/hooks/twilio/status"

// CallbackURL returns the StatusCallback URL for Herald's public base URL
// ("https://status.example.com" → "https://status.example.com/hooks/twilio/status").
func CallbackURL(publicBase string) string {
	return strings.TrimRight(publicBase, "/") + CallbackPath
}

// The query parameters Send adds to the status callback URL.
const (
	queryDelivery   = "delivery"
	querySubscriber = "subscriber"
	queryEndpoint   = "endpoint"
)

// SignatureHeader is the header Twilio signs its requests in.
const SignatureHeader = "X-Twilio-Signature"

// maxCallbackBytes bounds a callback's body (Twilio's are under 1 KiB).
const maxCallbackBytes = 16 << 10

// maxCallbackField bounds the text fields of a callback.
const maxCallbackField = 128

// Errors of [CallbackVerifier.Verify]. [CallbackHandler] answers 403 to the
// first two and 400 to the third.
var (
	// ErrUnsigned: the request has no X-Twilio-Signature.
	ErrUnsigned = errors.New("sms callback: not signed")
	// ErrBadSignature: the signature does not match the configured
	// callback URL, the parameters and the auth token, or the callback
	// concerns another account.
	ErrBadSignature = errors.New("sms callback: bad signature")
	// ErrMalformed: the request is not a status callback Herald can read.
	ErrMalformed = errors.New("sms callback: malformed")
)

// Status is a message status Twilio reports.
type Status string

// The message statuses, in the order a message goes through them. Twilio
// reports queued, sent, delivered, undelivered and failed to status
// callbacks; the others appear with Messaging Services, scheduling and
// channels other than SMS.
const (
	StatusAccepted    Status = "accepted"
	StatusScheduled   Status = "scheduled"
	StatusQueued      Status = "queued"
	StatusSending     Status = "sending"
	StatusSent        Status = "sent"
	StatusDelivered   Status = "delivered"
	StatusUndelivered Status = "undelivered"
	StatusFailed      Status = "failed"
	StatusRead        Status = "read"
	StatusCanceled    Status = "canceled"
)

var knownStatuses = map[Status]bool{
	StatusAccepted: true, StatusScheduled: true, StatusQueued: true, StatusSending: true,
	StatusSent: true, StatusDelivered: true, StatusUndelivered: true, StatusFailed: true,
	StatusRead: true, StatusCanceled: true,
}

// Final reports whether s is an end state: delivered, undelivered,
// failed, read or canceled.
func (s Status) Final() bool {
	switch s {
	case StatusDelivered, StatusUndelivered, StatusFailed, StatusRead, StatusCanceled:
		return true
	}
	return false
}

// Callback is one verified delivery receipt.
type Callback struct {
	// MessageSID is the message's SID, the ProviderID of Send's receipt.
	MessageSID string
	// AccountSID is the account the message belongs to.
	AccountSID string
	// Status is the message's new status.
	Status Status
	// ErrorCode is Twilio's error code for undelivered and failed
	// messages (30003 unreachable handset, 30005 unknown number, 30006
	// landline, 30007 carrier filtering…), 0 when none was given.
	ErrorCode int
	// To and From are the recipient and the sender as Twilio gives them.
	To, From string
	// DeliveryID, SubscriberID and EndpointID identify the delivery the
	// message was sent for (from the callback URL Send asked for; empty
	// for a message Herald did not send).
	DeliveryID, SubscriberID, EndpointID string
}

// Err returns the outcome of an undelivered or failed message as Send would
// classify it (a permanent error, disabling the endpoint for an invalid,
// unknown or landline number, suppressing the address after STOP), and nil
// for every other status.
func (cb Callback) Err() error {
	if cb.Status != StatusUndelivered && cb.Status != StatusFailed {
		return nil
	}
	pe := &channels.ProviderError{Message: "message " + string(cb.Status)}
	if cb.ErrorCode != 0 {
		pe.Code = strconv.Itoa(cb.ErrorCode)
	}
	switch cb.ErrorCode {
	case CodeInvalidNumber, CodeNotMobile, CodeUnknownDestination, CodeLandline:
		return channels.Disable(pe)
	case CodeUnsubscribed:
		return channels.Suppress(pe)
	}
	return channels.Permanent(pe)
}

// CallbackVerifier checks that status callbacks come from Twilio, with
// twilio-go's request validator: X-Twilio-Signature must be the signature,
// keyed with the auth token, of the configured StatusCallback URL (with the
// request's query, which Send set) and the form parameters. The URL is the
// configured public one, not the one the request reached (behind a proxy
// or a load balancer they differ). It is safe for concurrent use.
type CallbackVerifier struct {
	base       string // scheme, host and path of the configured URL
	accountSID string
	validator  twclient.RequestValidator
	logger     *slog.Logger
}

// NewCallbackVerifier returns the verifier for cfg's StatusCallback,
// AuthToken and AccountSID; the other fields of cfg are not used.
func NewCallbackVerifier(cfg Config) (*CallbackVerifier, error) {
	cfg = cfg.WithDefaults()
	if !accountSIDPattern.MatchString(cfg.AccountSID) {
		return nil, errors.New(`sms: AccountSID must be "AC" followed by 32 hex digits`)
	}
	if cfg.AuthToken.IsZero() {
		return nil, errors.New("sms: AuthToken is required to verify callbacks")
	}
	u, err := parseCallbackURL(cfg.StatusCallback)
	if err != nil {
		return nil, err
	}
	u.RawQuery = ""
	return &CallbackVerifier{
		base:       u.String(),
		accountSID: cfg.AccountSID,
		validator:  twclient.NewRequestValidator(cfg.AuthToken.Reveal()),
		logger:     cfg.Logger,
	}, nil
}

func parseCallbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.Fragment != "" {
		return nil, errors.New("sms: StatusCallback must be an absolute http(s) URL without credentials or fragment")
	}
	return u, nil
}

var (
	messageSIDPattern = regexp.MustCompile(`^(SM|MM)[0-9a-fA-F]{32}$`)
	errorCodePattern  = regexp.MustCompile(`^[0-9]{1,6}$`)
)

// Verify reads and checks a status callback. Its errors wrap
// [ErrUnsigned], [ErrBadSignature] or [ErrMalformed] and never quote the
// request's values.
//
// A body must be form-encoded, at most 16 KiB, and name each parameter
// once (twilio-go's validator signs the first value of a repeated
// parameter, so a repetition could smuggle an unsigned value). Once the
// signature holds, MessageSid, MessageStatus (or SmsStatus) and AccountSid
// are required; AccountSid must be the configured account, MessageStatus
// a known [Status] and ErrorCode, when present, a number.
func (v *CallbackVerifier) Verify(r *http.Request) (Callback, error) {
	sig := r.Header.Get(SignatureHeader)
	if sig == "" {
		return Callback{}, ErrUnsigned
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return Callback{}, fmt.Errorf("%w: body is not form-encoded", ErrMalformed)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCallbackBytes+1))
	if err != nil {
		return Callback{}, fmt.Errorf("%w: reading the body: %w", ErrMalformed, err)
	}
	if len(body) > maxCallbackBytes {
		return Callback{}, fmt.Errorf("%w: body over %d bytes", ErrMalformed, maxCallbackBytes)
	}
	form, err := singleValues(string(body))
	if err != nil {
		return Callback{}, fmt.Errorf("%w: body: %w", ErrMalformed, err)
	}
	target := v.base
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	if !v.validator.Validate(target, form, sig) {
		return Callback{}, ErrBadSignature
	}
	query, err := singleValues(r.URL.RawQuery)
	if err != nil {
		return Callback{}, fmt.Errorf("%w: query: %w", ErrMalformed, err)
	}
	return v.parse(form, query)
}

// singleValues decodes a form or query in which each name appears once.
func singleValues(s string) (map[string]string, error) {
	vals, err := url.ParseQuery(s)
	if err != nil {
		return nil, errors.New("not URL-encoded")
	}
	out := make(map[string]string, len(vals))
	for k, vs := range vals {
		if len(vs) != 1 {
			return nil, fmt.Errorf("parameter %q repeated", channels.Printable(k, 32))
		}
		out[k] = vs[0]
	}
	return out, nil
}

// parse turns signed parameters into a Callback.
func (v *CallbackVerifier) parse(form, query map[string]string) (Callback, error) {
	cb := Callback{
		MessageSID: form["MessageSid"],
		AccountSID: form["AccountSid"],
		Status:     Status(form["MessageStatus"]),
	}
	if cb.Status == "" {
		cb.Status = Status(form["SmsStatus"])
	}
	switch {
	case !messageSIDPattern.MatchString(cb.MessageSID):
		return Callback{}, fmt.Errorf("%w: MessageSid missing or not a message SID", ErrMalformed)
	case cb.AccountSID == "":
		return Callback{}, fmt.Errorf("%w: AccountSid missing", ErrMalformed)
	case cb.AccountSID != v.accountSID:
		return Callback{}, fmt.Errorf("%w: callback for another account", ErrBadSignature)
	case !knownStatuses[cb.Status]:
		return Callback{}, fmt.Errorf("%w: MessageStatus missing or unknown", ErrMalformed)
	}
	if ec := form["ErrorCode"]; ec != "" {
		if !errorCodePattern.MatchString(ec) {
			return Callback{}, fmt.Errorf("%w: ErrorCode is not a number", ErrMalformed)
		}
		cb.ErrorCode, _ = strconv.Atoi(ec)
	}
	for _, f := range []struct {
		dst  *string
		src  map[string]string
		name string
	}{
		{&cb.To, form, "To"}, {&cb.From, form, "From"},
		{&cb.DeliveryID, query, queryDelivery}, {&cb.SubscriberID, query, querySubscriber}, {&cb.EndpointID, query, queryEndpoint},
	} {
		s := f.src[f.name]
		if len(s) > maxCallbackField || channels.Printable(s, maxCallbackField) != s {
			return Callback{}, fmt.Errorf("%w: %s too long or not printable", ErrMalformed, f.name)
		}
		*f.dst = s
	}
	return cb, nil
}

// CallbackHandler serves Twilio's status callbacks (mount it at
// POST [CallbackPath]): it verifies each request with v and hands the
// receipt to record, which appends it to the delivery log. It answers 204
// when record succeeded, 403 to unsigned or badly signed requests, 400 to
// malformed ones, 405 to methods other than POST, and 500 when record
// failed (Twilio logs the failure; it does not retry). Error answers are
// short and generic. A nil v (a channel without StatusCallback) gives a
// handler that answers 404 to everything. record is required.
//
//	mux.Handle("POST "+sms.CallbackPath, sms.CallbackHandler(ch.CallbackVerifier(), record))
func CallbackHandler(v *CallbackVerifier, record func(context.Context, Callback) error) http.Handler {
	if record == nil {
		panic("sms: CallbackHandler needs a record function")
	}
	if v == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "status callbacks are not configured", http.StatusNotFound)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ctx := r.Context()
		cb, err := v.Verify(r)
		switch {
		case errors.Is(err, ErrUnsigned), errors.Is(err, ErrBadSignature):
			v.logger.LogAttrs(ctx, slog.LevelWarn, "twilio callback refused", slog.String("error", err.Error()))
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		case err != nil:
			v.logger.LogAttrs(ctx, slog.LevelWarn, "twilio callback malformed", slog.String("error", err.Error()))
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if err := record(ctx, cb); err != nil {
			v.logger.LogAttrs(ctx, slog.LevelError, "twilio callback not recorded",
				slog.String("sid", cb.MessageSID), slog.String("delivery", cb.DeliveryID), slog.String("error", err.Error()))
			http.Error(w, "not recorded", http.StatusInternalServerError)
			return
		}
		v.logger.LogAttrs(ctx, slog.LevelDebug, "twilio callback",
			slog.String("sid", cb.MessageSID), slog.String("delivery", cb.DeliveryID),
			slog.String("status", string(cb.Status)), slog.Int("code", cb.ErrorCode))
		w.WriteHeader(http.StatusNoContent)
	})
}
