package dkimtest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// Verify checks, with github.com/emersion/go-msgauth, the DKIM signatures
// of the message data against the TXT
// record value published at name (as email.DKIM.DNSRecord gives them) and
// returns the verifications, one per signature. It fails the test when
// the message cannot be read.
func Verify(t testing.TB, name, value string, data []byte) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != name {
				return nil, errors.New("no such record: " + domain)
			}
			return []string{value}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}
