package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalidURL is wrapped by the errors [Policy.CheckURL] returns for a URL
// that is malformed or not allowed (scheme, credentials, missing host). The
// error text never quotes the URL.
var ErrInvalidURL = errors.New("invalid URL")

// BlockedError reports an address the [Policy] refuses. It holds no part of
// the URL but the host, so it is safe to log and record.
type BlockedError struct {
	// Addr is the refused address. It is the zero Addr when the host was
	// refused for its form (see Host).
	Addr netip.Addr
	// Host is set when a host name was refused for its form, e.g. a
	// non-canonical IPv4 number such as "0177.0.0.1".
	Host string
	// Range is the blocked range that matched, when there is one.
	Range netip.Prefix
	// Reason names the range or the rule ("loopback", "private network",
	// "non-canonical IPv4 form").
	Reason string
}

// Error returns "egress: <address> is blocked: <reason> (<range>)".
func (e *BlockedError) Error() string {
	var b strings.Builder
	b.WriteString("egress: ")
	switch {
	case e.Addr.IsValid():
		b.WriteString(e.Addr.String())
	case e.Host != "":
		b.WriteString(strconv.Quote(e.Host))
	default:
		b.WriteString("address")
	}
	b.WriteString(" is blocked")
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Range.IsValid() {
		b.WriteString(" (")
		b.WriteString(e.Range.String())
		b.WriteString(")")
	}
	return b.String()
}

// Policy decides which addresses Herald may connect to. The zero Policy
// allows public unicast addresses only.
type Policy struct {
	// Allow lists prefixes that are allowed even though they fall in a
	// blocked range, e.g. 127.0.0.1/32 for tests. An IPv4 prefix also
	// allows the IPv4-mapped and NAT64 forms of its addresses. Defaults to
	// none.
	Allow []netip.Prefix
}

type blockedRange struct {
	prefix netip.Prefix
	reason string
}

func br(p, reason string) blockedRange {
	return blockedRange{netip.MustParsePrefix(p), reason}
}

// blocked4 lists the IPv4 ranges that are not public unicast (IANA IPv4
// Special-Purpose Address Registry, RFC 6890 and successors).
var blocked4 = []blockedRange{
	br("0.0.0.0/8", "this network"),
	br("10.0.0.0/8", "private network"),
	br("100.64.0.0/10", "carrier-grade NAT"),
	br("127.0.0.0/8", "loopback"),
	br("169.254.0.0/16", "link-local (cloud metadata)"),
	br("172.16.0.0/12", "private network"),
	br("192.0.0.0/24", "IETF protocol assignments"),
	br("192.0.2.0/24", "documentation (TEST-NET-1)"),
	br("192.88.99.0/24", "6to4 relay anycast"),
	br("192.168.0.0/16", "private network"),
	br("198.18.0.0/15", "benchmarking"),
	br("198.51.100.0/24", "documentation (TEST-NET-2)"),
	br("203.0.113.0/24", "documentation (TEST-NET-3)"),
	br("224.0.0.0/4", "multicast"),
	br("240.0.0.0/4", "reserved and broadcast"),
}

// blocked6 lists the IPv6 ranges refused outright. The forms embedding an
// IPv4 address and the space outside 2000::/3 are handled in classify.
var blocked6 = []blockedRange{
	br("64:ff9b:1::/48", "local-use NAT64"),
	br("100::/64", "discard-only"),
	br("2001::/32", "Teredo"),
	br("2001:2::/48", "benchmarking"),
	br("2001:10::/28", "ORCHID"),
	br("2001:20::/28", "ORCHIDv2"),
	br("2001:db8::/32", "documentation"),
	br("3fff::/20", "documentation"),
	br("fc00::/7", "unique local"),
	br("fe80::/10", "link-local"),
	br("fec0::/10", "site-local"),
	br("ff00::/8", "multicast"),
}

var (
	v6Unspecified = br("::/128", "unspecified")
	v6Loopback    = br("::1/128", "loopback")
	v6Compat      = br("::/96", "IPv4-compatible IPv6 (deprecated)")
	v6NAT64       = netip.MustParsePrefix("64:ff9b::/96")
	v6SixToFour   = netip.MustParsePrefix("2002::/16")
	v6Global      = netip.MustParsePrefix("2000::/3")
)

// CheckAddr returns nil if a may be connected to, or a [*BlockedError].
// A zone, if any, is ignored.
func (p Policy) CheckAddr(a netip.Addr) error {
	if !a.IsValid() {
		return &BlockedError{Reason: "invalid address"}
	}
	a = a.WithZone("")
	if p.allowed(a) {
		return nil
	}
	if r, ok := classify(a); ok {
		return &BlockedError{Addr: a, Range: r.prefix, Reason: r.reason}
	}
	return nil
}

// allowed reports whether a, or the IPv4 address it embeds as a mapped or
// NAT64 address, is in the allow-list.
func (p Policy) allowed(a netip.Addr) bool {
	if len(p.Allow) == 0 {
		return false
	}
	v4, embeds := embeddedV4(a)
	for _, pre := range p.Allow {
		if pre.Contains(a) || (embeds && pre.Contains(v4)) {
			return true
		}
	}
	return false
}

// embeddedV4 returns the IPv4 address an IPv4-mapped or NAT64 address
// stands for.
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	switch {
	case a.Is4In6():
		return a.Unmap(), true
	case a.Is6() && v6NAT64.Contains(a):
		b := a.As16()
		return netip.AddrFrom4([4]byte(b[12:16])), true
	}
	return netip.Addr{}, false
}

// classify returns the blocked range a falls in, if any.
func classify(a netip.Addr) (blockedRange, bool) {
	if a.Is4() {
		for _, r := range blocked4 {
			if r.prefix.Contains(a) {
				return r, true
			}
		}
		return blockedRange{}, false
	}
	switch {
	case a.Is4In6():
		return classifyEmbedded(a.Unmap(), "IPv4-mapped")
	case a == v6Unspecified.prefix.Addr():
		return v6Unspecified, true
	case a == v6Loopback.prefix.Addr():
		return v6Loopback, true
	case v6Compat.prefix.Contains(a):
		return v6Compat, true
	case v6NAT64.Contains(a):
		v4, _ := embeddedV4(a)
		return classifyEmbedded(v4, "via NAT64 64:ff9b::/96")
	case v6SixToFour.Contains(a):
		b := a.As16()
		return classifyEmbedded(netip.AddrFrom4([4]byte(b[2:6])), "via 6to4 2002::/16")
	}
	for _, r := range blocked6 {
		if r.prefix.Contains(a) {
			return r, true
		}
	}
	if !v6Global.Contains(a) {
		return blockedRange{reason: "outside IPv6 global unicast 2000::/3"}, true
	}
	return blockedRange{}, false
}

func classifyEmbedded(v4 netip.Addr, form string) (blockedRange, bool) {
	r, ok := classify(v4)
	if ok {
		r.reason += " (" + form + ")"
	}
	return r, ok
}

// CheckURL parses raw and checks it can be sent to: an absolute https URL
// (or http when allowHTTP is true), with a host, a valid port if any, and no
// credentials. A host that is an IP literal is checked with
// [Policy.CheckAddr]; a host written as a non-canonical IPv4 number
// ("2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1") is refused with a
// [*BlockedError]. Host names are checked later, on the address dialled.
//
// Errors wrap [ErrInvalidURL] or are [*BlockedError]s; they never quote the
// URL, only the host of a refused non-canonical form.
func (p Policy) CheckURL(raw string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// *url.Error quotes the whole URL and some inner errors quote
		// parts of it: say only that it is malformed.
		return nil, fmt.Errorf("%w: malformed", ErrInvalidURL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	case allowHTTP:
		return nil, fmt.Errorf("%w: scheme must be http or https", ErrInvalidURL)
	default:
		return nil, fmt.Errorf("%w: scheme must be https", ErrInvalidURL)
	}
	if u.Opaque != "" {
		return nil, fmt.Errorf("%w: not a hierarchical URL", ErrInvalidURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials in URLs are not allowed", ErrInvalidURL)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("%w: missing host", ErrInvalidURL)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("%w: invalid port", ErrInvalidURL)
		}
	}
	if err := p.checkHost(host); err != nil {
		return nil, err
	}
	return u, nil
}

// checkHost checks a host name or IP literal (without brackets or port).
func (p Policy) checkHost(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return p.CheckAddr(a)
	}
	if endsInNumber(host) {
		return &BlockedError{Host: host, Reason: "non-canonical IPv4 form"}
	}
	if strings.ContainsAny(host, "%:[]") {
		return fmt.Errorf("%w: invalid host", ErrInvalidURL)
	}
	return nil
}

// endsInNumber reports whether host's last label (ignoring one trailing
// dot) is a number, decimal or 0x-hexadecimal. Such a host is an IPv4
// address to URL parsers and to inet_aton, whatever its form; no top-level
// domain is numeric. It is the WHATWG URL standard's "ends in a number".
func endsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		for _, c := range last[2:] {
			if !isHex(c) {
				return false
			}
		}
		return true
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isHex(c rune) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
