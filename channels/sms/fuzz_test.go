package sms

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// FuzzNormalize: Normalize never panics; what it accepts comes out in E.164
// form and is a fixed point; what it refuses wraps ErrInvalidNumber.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"+33612345678", "+33 6 12 34 56 78", "+33 (0)6 12 34 56 78", "+39 312 345 6789",
		"+41 79 123 45 67", "+1 (650) 253-0000", "+44 20 7946 0958", "0612345678", "+",
		"+999123", "+33612345678 ext. 12", "+1 800 FLOWERS", "++33", "+0612345678",
		"+33.6.12.34.56.78", "+33/612345678", "+" + strings.Repeat("9", 40), " +33612345678 ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidNumber) {
				t.Fatalf("Normalize(%q): error %v does not wrap ErrInvalidNumber", s, err)
			}
			if n != "" {
				t.Fatalf("Normalize(%q) returned %q with an error", s, n)
			}
			return
		}
		if !e164.MatchString(n) {
			t.Fatalf("Normalize(%q) = %q, not E.164", s, n)
		}
		if again, err := Normalize(n); err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q, %v", s, n, n, again, err)
		}
	})
}

// FuzzVerify feeds arbitrary bodies and queries to Verify, signed or not.
// It never panics; an unsigned request is always refused; a correctly
// signed one is never refused for its signature unless it names another
// account; what it accepts satisfies the Callback's invariants.
func FuzzVerify(f *testing.F) {
	delivered := "SmsSid=" + testMessageSID + "&SmsStatus=delivered&MessageStatus=delivered&To=%2B33612345678&MessageSid=" +
		testMessageSID + "&AccountSid=" + testAccountSID + "&From=%2B33757000000&ApiVersion=2010-04-01"
	f.Add(delivered, callbackQuery, true)
	f.Add(delivered, callbackQuery, false)
	f.Add(delivered+"&ErrorCode=30006", "", true)
	f.Add(delivered+"&MessageStatus=failed", callbackQuery, true)
	f.Add("MessageSid=%zz", "delivery=%zz", true)
	f.Add(strings.Replace(delivered, "delivered", "lost", 2), "a=1&a=2", true)
	f.Add("", "", true)
	v := newVerifier(f, nil)
	f.Fuzz(func(t *testing.T, body, query string, sign bool) {
		req := &http.Request{
			Method: http.MethodPost,
			URL:    &url.URL{Path: CallbackPath, RawQuery: query},
			Header: http.Header{"Content-Type": {form}},
			Body:   io.NopCloser(strings.NewReader(body)),
		}
		if sign {
			params := map[string]string{}
			if vals, err := url.ParseQuery(body); err == nil {
				for k, vs := range vals {
					params[k] = vs[0]
				}
			}
			target := CallbackURL(testPublicBase)
			if query != "" {
				target += "?" + query
			}
			req.Header.Set(SignatureHeader, twilioSign(testAuthToken, target, params))
		}
		cb, err := v.Verify(req)
		if !sign {
			if err == nil {
				t.Fatalf("an unsigned callback was accepted: %+v", cb)
			}
			return
		}
		if err != nil {
			if errors.Is(err, ErrUnsigned) ||
				errors.Is(err, ErrBadSignature) && !strings.Contains(err.Error(), "another account") {
				t.Fatalf("a signed callback was refused for its signature: %v", err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v wraps none of the Verify errors", err)
			}
			if cb != (Callback{}) {
				t.Fatalf("Verify returned %+v with an error", cb)
			}
			return
		}
		if !messageSIDPattern.MatchString(cb.MessageSID) || cb.AccountSID != testAccountSID ||
			!knownStatuses[cb.Status] || cb.ErrorCode < 0 || cb.ErrorCode > 999999 {
			t.Fatalf("accepted an invalid callback: %+v", cb)
		}
		for _, s := range []string{cb.To, cb.From, cb.DeliveryID, cb.SubscriberID, cb.EndpointID} {
			if len(s) > maxCallbackField || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				t.Fatalf("accepted a field %q", s)
			}
		}
	})
}
