package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	// want is the blocked range, "" for an allowed address, "-" for a
	// blocked address without a single range.
	for _, tc := range []struct {
		addr string
		want string
	}{
		// IPv4 ranges, first and last address of each.
		{"0.0.0.0", "0.0.0.0/8"},
		{"0.255.255.255", "0.0.0.0/8"},
		{"10.0.0.1", "10.0.0.0/8"},
		{"10.255.255.255", "10.0.0.0/8"},
		{"100.64.0.0", "100.64.0.0/10"},
		{"100.127.255.255", "100.64.0.0/10"},
		{"127.0.0.1", "127.0.0.0/8"},
		{"127.255.255.254", "127.0.0.0/8"},
		{"169.254.169.254", "169.254.0.0/16"},
		{"172.16.0.1", "172.16.0.0/12"},
		{"172.31.255.255", "172.16.0.0/12"},
		{"192.0.0.8", "192.0.0.0/24"},
		{"192.0.2.1", "192.0.2.0/24"},
		{"192.88.99.1", "192.88.99.0/24"},
		{"192.168.1.1", "192.168.0.0/16"},
		{"198.18.0.1", "198.18.0.0/15"},
		{"198.19.255.255", "198.18.0.0/15"},
		{"198.51.100.7", "198.51.100.0/24"},
		{"203.0.113.9", "203.0.113.0/24"},
		{"224.0.0.1", "224.0.0.0/4"},
		{"239.255.255.250", "224.0.0.0/4"},
		{"240.0.0.1", "240.0.0.0/4"},
		{"255.255.255.255", "240.0.0.0/4"},
		// Public IPv4, including neighbours of blocked ranges.
		{"1.1.1.1", ""},
		{"8.8.8.8", ""},
		{"9.255.255.255", ""},
		{"11.0.0.0", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"172.15.255.255", ""},
		{"172.32.0.0", ""},
		{"192.0.1.1", ""},
		{"198.17.255.255", ""},
		{"198.20.0.0", ""},
		{"223.255.255.255", ""},
		// IPv4-mapped forms.
		{"::ffff:127.0.0.1", "127.0.0.0/8"},
		{"::ffff:7f00:1", "127.0.0.0/8"},
		{"::ffff:0:0", "0.0.0.0/8"},
		{"::ffff:10.1.2.3", "10.0.0.0/8"},
		{"::ffff:169.254.169.254", "169.254.0.0/16"},
		{"::ffff:192.168.0.1", "192.168.0.0/16"},
		{"::ffff:100.64.0.1", "100.64.0.0/10"},
		{"::ffff:224.0.0.1", "224.0.0.0/4"},
		{"::ffff:8.8.8.8", ""},
		// IPv4-compatible forms (deprecated, all refused).
		{"::127.0.0.1", "::/96"},
		{"::10.0.0.1", "::/96"},
		{"::8.8.8.8", "::/96"},
		// NAT64: judged on the embedded IPv4 address.
		{"64:ff9b::127.0.0.1", "127.0.0.0/8"},
		{"64:ff9b::a9fe:a9fe", "169.254.0.0/16"},
		{"64:ff9b::10.0.0.1", "10.0.0.0/8"},
		{"64:ff9b::8.8.8.8", ""},
		{"64:ff9b:1::1", "64:ff9b:1::/48"},
		// 6to4: judged on the embedded IPv4 address.
		{"2002:7f00:1::1", "127.0.0.0/8"},
		{"2002:c0a8:101::1", "192.168.0.0/16"},
		{"2002:808:808::1", ""},
		// IPv6 ranges.
		{"::", "::/128"},
		{"::1", "::1/128"},
		{"fc00::1", "fc00::/7"},
		{"fd12:3456::1", "fc00::/7"},
		{"fe80::1", "fe80::/10"},
		{"fe80::1%eth0", "fe80::/10"},
		{"febf::1", "fe80::/10"},
		{"fec0::1", "fec0::/10"},
		{"ff02::1", "ff00::/8"},
		{"ff05::1:3", "ff00::/8"},
		{"2001:db8::1", "2001:db8::/32"},
		{"2001::1", "2001::/32"},
		{"2001:2::1", "2001:2::/48"},
		{"2001:10::1", "2001:10::/28"},
		{"2001:20::1", "2001:20::/28"},
		{"3fff::1", "3fff::/20"},
		{"100::1", "100::/64"},
		{"::2", "::/96"},
		{"1::1", "-"},
		{"4000::1", "-"},
		{"e000::1", "-"},
		// Public IPv6.
		{"2606:4700:4700::1111", ""},
		{"2001:4860:4860::8888", ""},
		{"2a00:1450:4007:80f::200e", ""},
	} {
		a := netip.MustParseAddr(tc.addr)
		err := Policy{}.CheckAddr(a)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: CheckAddr = %v, want allowed", tc.addr, err)
			}
			continue
		}
		var be *BlockedError
		if !errors.As(err, &be) {
			t.Errorf("%s: CheckAddr = %v, want a *BlockedError", tc.addr, err)
			continue
		}
		got := be.Range.String()
		if !be.Range.IsValid() {
			got = "-"
		}
		if got != tc.want {
			t.Errorf("%s: blocked range %s (%v), want %s", tc.addr, got, err, tc.want)
		}
		if be.Reason == "" || !strings.Contains(err.Error(), "is blocked") {
			t.Errorf("%s: error %q lacks a reason", tc.addr, err)
		}
	}
}

func TestCheckAddrAllowList(t *testing.T) {
	t.Parallel()
	p := Policy{Allow: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("10.20.0.0/16"),
		netip.MustParsePrefix("fd00:1::/32"),
	}}
	for _, tc := range []struct {
		addr    string
		allowed bool
	}{
		{"127.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"64:ff9b::127.0.0.1", true},
		{"127.0.0.2", false},
		{"::1", false},
		{"10.20.3.4", true},
		{"10.21.0.1", false},
		{"fd00:1::5", true},
		{"fd00:2::5", false},
		{"169.254.169.254", false},
		{"8.8.8.8", true},
	} {
		err := p.CheckAddr(netip.MustParseAddr(tc.addr))
		if (err == nil) != tc.allowed {
			t.Errorf("%s: CheckAddr = %v, want allowed=%v", tc.addr, err, tc.allowed)
		}
	}
	if err := (Policy{}).CheckAddr(netip.Addr{}); err == nil {
		t.Error("the zero Addr must be refused")
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	const (
		invalid = "invalid"
		blocked = "blocked"
	)
	for _, tc := range []struct {
		raw       string
		allowHTTP bool
		want      string // "" accepted, invalid, blocked
	}{
		{"https://hooks.example.com/in?token=abc", false, ""},
		{"https://hooks.example.com:8443/in", false, ""},
		{"HTTPS://Hooks.Example.com/x", false, ""},
		{"https://8.8.8.8/x", false, ""},
		{"https://[2606:4700:4700::1111]/x", false, ""},
		{"https://xn--bcher-kva.example/", false, ""},
		{"https://host.example:/x", false, ""},
		{"http://hooks.example.com/", true, ""},
		{"http://hooks.example.com/", false, invalid},
		{"ftp://hooks.example.com/", true, invalid},
		{"file:///etc/passwd", true, invalid},
		{"gopher://hooks.example.com/", false, invalid},
		{"javascript:alert(1)", false, invalid},
		{"mailto:ops@example.com", false, invalid},
		{"//hooks.example.com/x", false, invalid},
		{"/relative", false, invalid},
		{"", false, invalid},
		{"https://", false, invalid},
		{"https:///path", false, invalid},
		{"https://user:pass@hooks.example.com/", false, invalid},
		{"https://user@hooks.example.com/", false, invalid},
		{"https://:@hooks.example.com/", false, invalid},
		{"https://hooks.example.com:0/", false, invalid},
		{"https://hooks.example.com:65536/", false, invalid},
		{"https://hooks.example.com:99999/", false, invalid},
		{"https://hooks.example.com:-1/", false, invalid},
		{"https://hooks.example.com/%zz", false, invalid},
		{"https://a b/", false, invalid},
		// IP literals on the block list.
		{"https://127.0.0.1/", false, blocked},
		{"https://127.0.0.1:8080/", false, blocked},
		{"https://10.0.0.1/", false, blocked},
		{"https://169.254.169.254/latest/meta-data/", false, blocked},
		{"https://0.0.0.0/", false, blocked},
		{"https://[::1]/", false, blocked},
		{"https://[::]/", false, blocked},
		{"https://[::ffff:127.0.0.1]/", false, blocked},
		{"https://[::ffff:7f00:1]/", false, blocked},
		{"https://[0:0:0:0:0:ffff:127.0.0.1]/", false, blocked},
		{"https://[::127.0.0.1]/", false, blocked},
		{"https://[64:ff9b::169.254.169.254]/", false, blocked},
		{"https://[fe80::1%25eth0]/", false, blocked},
		{"https://[fd00::1]/", false, blocked},
		// Non-canonical IPv4 forms.
		{"https://2130706433/", false, blocked},
		{"https://0177.0.0.1/", false, blocked},
		{"https://0x7f.0.0.1/", false, blocked},
		{"https://0x7f000001/", false, blocked},
		{"https://0X7F.1/", false, blocked},
		{"https://127.1/", false, blocked},
		{"https://127.0.1/", false, blocked},
		{"https://017700000001/", false, blocked},
		{"https://127.0.0.1./", false, blocked},
		{"https://8.8.8.8./", false, blocked},
		{"https://010.0.0.1/", false, blocked},
		{"https://1.2.3.04/", false, blocked},
		{"https://3232235777/", false, blocked},
		{"https://0x/", false, blocked},
		{"https://example.0x1/", false, blocked},
		{"https://example.123/", false, blocked},
		// Names that only look numeric in part are host names.
		{"https://0x7f.example/", false, ""},
		{"https://1password.example/", false, ""},
		{"https://123.example.com/", false, ""},
		{"https://example.com./", false, ""},
	} {
		u, err := Policy{}.CheckURL(tc.raw, tc.allowHTTP)
		var be *BlockedError
		switch tc.want {
		case "":
			if err != nil || u == nil {
				t.Errorf("CheckURL(%q) = %v, want accepted", tc.raw, err)
			}
		case invalid:
			if !errors.Is(err, ErrInvalidURL) {
				t.Errorf("CheckURL(%q) = %v, want ErrInvalidURL", tc.raw, err)
			}
		case blocked:
			if !errors.As(err, &be) {
				t.Errorf("CheckURL(%q) = %v, want a *BlockedError", tc.raw, err)
			}
		}
		if err != nil && u != nil {
			t.Errorf("CheckURL(%q) returned both a URL and %v", tc.raw, err)
		}
	}
}

func TestCheckURLAllowList(t *testing.T) {
	t.Parallel()
	p := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	if _, err := p.CheckURL("http://127.0.0.1:8080/hook", true); err != nil {
		t.Errorf("allowed loopback refused: %v", err)
	}
	if _, err := p.CheckURL("http://127.0.0.2:8080/hook", true); err == nil {
		t.Error("127.0.0.2 is not in the allow-list")
	}
	// The allow-list never legitimises a non-canonical form.
	if _, err := p.CheckURL("http://2130706433/hook", true); err == nil {
		t.Error("decimal form of an allowed address accepted")
	}
}

func TestCheckURLErrorsHideTheURL(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"https://user:hunter2secret@hooks.example.com/x?token=querysecret",
		"http://hooks.example.com/x?token=querysecret",
		"https://hooks.example.com/%zz?token=querysecret",
		"https://127.0.0.1/x?token=querysecret",
		"https://0177.0.0.1/x?token=querysecret",
		"ftp://hooks.example.com/x?token=querysecret",
	} {
		_, err := Policy{}.CheckURL(raw, false)
		if err == nil {
			t.Errorf("CheckURL(%q) accepted", raw)
			continue
		}
		for _, s := range []string{"hunter2secret", "querysecret", "/x"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("CheckURL(%q) error %q contains %q", raw, err, s)
			}
		}
	}
}

func TestBlockedErrorText(t *testing.T) {
	t.Parallel()
	err := Policy{}.CheckAddr(netip.MustParseAddr("::ffff:10.0.0.1"))
	want := "egress: ::ffff:10.0.0.1 is blocked: private network (IPv4-mapped) (10.0.0.0/8)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	_, err = Policy{}.CheckURL("https://0x7f.1/", false)
	want = `egress: "0x7f.1" is blocked: non-canonical IPv4 form`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}
