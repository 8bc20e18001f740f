package email

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/dkimtest"
	"github.com/heraldhq/herald/secret"
)

func rsaPEM(t testing.TB, bits int) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}

func TestDKIM(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, key, k string
	}{
		{"ed25519", dkimtest.Ed25519PEM, "k=ed25519"},
		{"rsa", rsaPEM(t, 2048), "k=rsa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := &DKIM{Domain: "herald.example", Selector: "herald2025", PrivateKey: secret.Value(tc.key)}
			name, value, err := d.DNSRecord()
			if err != nil {
				t.Fatal(err)
			}
			if name != "herald2025._domainkey.herald.example" || !strings.HasPrefix(value, "v=DKIM1; "+tc.k+"; p=") {
				t.Errorf("record %s %q", name, value)
			}
			env, err := testRenderer(t, func(c *Config) { c.DKIM = d }).compose(dupont(), frenchMessage(), testDate)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(env.data, []byte("DKIM-Signature: ")) {
				t.Fatalf("no signature on top:\n%s", env.data)
			}
			vs := dkimtest.Verify(t, d, env.data)
			if len(vs) != 1 || vs[0].Err != nil {
				t.Fatalf("verification %+v (err %v)", *vs[0], vs[0].Err)
			}
			if vs[0].Domain != "herald.example" || vs[0].Time.IsZero() {
				t.Errorf("signed by %q at %v", vs[0].Domain, vs[0].Time)
			}
			signed := strings.ToLower(strings.Join(vs[0].HeaderKeys, ":"))
			for _, h := range []string{"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id", "x-herald-incident"} {
				if !slices.Contains(strings.Split(signed, ":"), h) {
					t.Errorf("%s is not signed (h=%s)", h, signed)
				}
			}

			// Changes in transit break the signature.
			for what, tamper := range map[string]func([]byte) []byte{
				"the unsubscribe URL": func(b []byte) []byte {
					return bytes.Replace(b, []byte("https://herald.example/u/abc"), []byte("https://evil.example/u/abc"), 1)
				},
				"a second From": func(b []byte) []byte {
					return append([]byte("From: attacker@evil.example\r\n"), b...)
				},
				"a second List-Unsubscribe": func(b []byte) []byte {
					return append([]byte("List-Unsubscribe: <https://evil.example/>\r\n"), b...)
				},
				"the text": func(b []byte) []byte {
					return bytes.Replace(b, []byte("Nous surveillons"), []byte("Nous ignorons"), 1)
				},
			} {
				vs := dkimtest.Verify(t, d, tamper(bytes.Clone(env.data)))
				if len(vs) != 1 || vs[0].Err == nil {
					t.Errorf("changing %s left the signature valid", what)
				}
			}
		})
	}
}

func TestDKIMKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		key  string
		ok   bool
	}{
		{"ed25519 PKCS #8", dkimtest.Ed25519PEM, true},
		{"rsa 1024", rsaPEM(t, 1024), true},
		{"garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", false},
		{"empty", "", false},
	} {
		d := &DKIM{Domain: "herald.example", Selector: "s1", PrivateKey: secret.Value(tc.key)}
		_, _, err := d.DNSRecord()
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && tc.key != "" && strings.Contains(err.Error(), tc.key[30:40]) {
			t.Errorf("%s: the error quotes the key", tc.name)
		}
	}
	for _, d := range []DKIM{
		{Domain: "", Selector: "s1", PrivateKey: dkimtest.Ed25519PEM},
		{Domain: "herald.example", Selector: "", PrivateKey: dkimtest.Ed25519PEM},
		{Domain: "herald.example", Selector: "a;b", PrivateKey: dkimtest.Ed25519PEM},
	} {
		if _, _, err := d.DNSRecord(); err == nil {
			t.Errorf("%+v accepted", d)
		}
	}
	// DMARC alignment: From's domain or a parent.
	for _, tc := range []struct {
		from, signer string
		ok           bool
	}{
		{"herald.example", "herald.example", true},
		{"mail.herald.example", "herald.example", true},
		{"herald.example", "mail.herald.example", false},
		{"evilherald.example", "herald.example", false},
		{"HERALD.example", "herald.EXAMPLE.", true},
	} {
		if got := aligned(tc.from, tc.signer); got != tc.ok {
			t.Errorf("aligned(%q, %q) = %v", tc.from, tc.signer, got)
		}
	}
}
