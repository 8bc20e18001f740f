package egress

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzCheckURL checks CheckURL's promises on arbitrary input: an accepted
// URL is http(s), has a host, carries no credentials, and its host is
// either an allowed IP literal or a name that does not end in a number; a
// refusal is typed and never quotes the URL's query or password.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://hooks.example.com/in?token=abc",
		"http://127.0.0.1:8080/x",
		"https://2130706433/",
		"https://0177.0.0.1/",
		"https://0x7f.0.0.1/",
		"https://127.1/",
		"https://[::ffff:127.0.0.1]/",
		"https://[64:ff9b::a9fe:a9fe]/",
		"https://[fe80::1%25eth0]:443/",
		"https://user:pass@example.com/",
		"https://example.com:99999/",
		"https://example.com./",
		"https://xn--bcher-kva.example/path?q=1#frag",
		"HTTPS://EXAMPLE.COM",
		"//example.com",
		"mailto:a@b",
		"",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, allowHTTP bool) {
		u, err := Policy{}.CheckURL(raw, allowHTTP)
		if err != nil {
			if u != nil {
				t.Fatal("both a URL and an error")
			}
			var be *BlockedError
			if !errors.Is(err, ErrInvalidURL) && !errors.As(err, &be) {
				t.Fatalf("untyped error %v", err)
			}
			if pu, perr := url.Parse(raw); perr == nil {
				host := pu.Hostname()
				secrets := []string{pu.RawQuery}
				if pw, ok := pu.User.Password(); ok {
					secrets = append(secrets, pw)
				}
				for _, s := range secrets {
					if len(s) >= 6 && !strings.Contains(host, s) && strings.Contains(err.Error(), s) {
						t.Fatalf("error %q quotes %q", err, s)
					}
				}
			}
			return
		}
		if u.Scheme != "https" && (u.Scheme != "http" || !allowHTTP) {
			t.Fatalf("accepted scheme %q", u.Scheme)
		}
		if u.User != nil {
			t.Fatal("accepted credentials")
		}
		host := u.Hostname()
		if host == "" {
			t.Fatal("accepted an empty host")
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if err := (Policy{}).CheckAddr(a); err != nil {
				t.Fatalf("accepted blocked literal %s", a)
			}
		} else if endsInNumber(host) {
			t.Fatalf("accepted numeric host %q", host)
		}
		// Re-checking the URL's own serialisation gives the same verdict.
		if _, err := (Policy{}).CheckURL(u.String(), allowHTTP); err != nil {
			t.Fatalf("accepted %q but its serialisation %q is refused: %v", raw, u.String(), err)
		}
	})
}
