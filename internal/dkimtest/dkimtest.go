package dkimtest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// Ed25519PEM is a fixed Ed25519 private key (PKCS #8) for tests.
const Ed25519PEM = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEICusn3alB8sGz7DOXxHyZC1QCpTVfSVE2eIHbxPNcwcd
-----END PRIVATE KEY-----
`

// Record is what publishes a DKIM key: email.DKIM's DNSRecord.
type Record interface {
	DNSRecord() (name, value string, err error)
}

// Verify checks, with github.com/emersion/go-msgauth, the DKIM signatures
// of the message data against the TXT record r publishes, and returns the
// verifications, one per signature. It fails the test when the record or
// the message cannot be read.
func Verify(t testing.TB, r Record, data []byte) []*dkim.Verification {
	t.Helper()
	name, value, err := r.DNSRecord()
	if err != nil {
		t.Fatal(err)
	}
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
