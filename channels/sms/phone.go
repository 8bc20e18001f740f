package sms

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalidNumber is the error, wrapped, of a phone number that
// [Normalize] refuses.
var ErrInvalidNumber = errors.New("not a valid phone number")

// maxNumberInput bounds the input Normalize looks at (E.164 numbers have
// at most 15 digits; formatting adds spaces and punctuation).
const maxNumberInput = 64

// maxE164Digits is the most digits an E.164 number has, country code
// included.
const maxE164Digits = 15

// Normalize checks that number is a valid phone number in international
// form and returns it in E.164 form ("+33 6 12 34 56 78" →
// "+33612345678"). The number must start with "+" and its country code (a
// number in national form is ambiguous without a region); it may hold
// spaces, dots, dashes, slashes and parentheses, but no letters and no
// extension, and at most 15 digits. Validity follows libphonenumber's metadata (the nyaruka
// port): a number of the right length for an allocated range of its
// country.
//
// Herald calls it when a subscriber endpoint is written and again at send
// time. Errors wrap [ErrInvalidNumber] and never quote the number.
func Normalize(number string) (string, error) {
	s := strings.TrimSpace(number)
	switch {
	case s == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidNumber)
	case len(s) > maxNumberInput:
		return "", fmt.Errorf("%w: longer than %d characters", ErrInvalidNumber, maxNumberInput)
	case s[0] != '+':
		return "", fmt.Errorf("%w: must start with + and the country code", ErrInvalidNumber)
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == ' ', c == '-', c == '.', c == '/', c == '(', c == ')':
		default:
			return "", fmt.Errorf("%w: only digits, spaces and . - / ( ) may follow the +", ErrInvalidNumber)
		}
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidNumber, err)
	}
	if n.GetExtension() != "" {
		return "", fmt.Errorf("%w: has an extension", ErrInvalidNumber)
	}
	if !phonenumbers.IsValidNumber(n) {
		return "", fmt.Errorf("%w: no such number in its country's numbering plan", ErrInvalidNumber)
	}
	e := phonenumbers.Format(n, phonenumbers.E164)
	if len(e) > 1+maxE164Digits {
		// Some numbering plans (Germany's) allow longer numbers than
		// E.164's 15 digits; no SMS route takes them.
		return "", fmt.Errorf("%w: more than %d digits", ErrInvalidNumber, maxE164Digits)
	}
	return e, nil
}

// maxCachedNumbers bounds the cache of normalised numbers; it is emptied
// when full.
const maxCachedNumbers = 4096

// numbers caches Normalize's answers for valid numbers: the check costs
// more than the rest of a send's preparation, and the same endpoints are
// sent to again and again.
type numbers struct {
	mu sync.RWMutex
	m  map[string]string
}

func (c *numbers) normalize(raw string) (string, error) {
	c.mu.RLock()
	n, ok := c.m[raw]
	c.mu.RUnlock()
	if ok {
		return n, nil
	}
	n, err := Normalize(raw)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedNumbers {
		clear(c.m)
	}
	if c.m == nil {
		c.m = make(map[string]string)
	}
	c.m[raw] = n
	c.mu.Unlock()
	return n, nil
}
