package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// DNSConfig configures the caching resolver [NewResolver] builds, which
// [NewClient] uses unless [Config.Resolver] is set.
type DNSConfig struct {
	// Servers are the DNS servers asked, as "ip" (port 53) or "ip:port".
	// Defaults to the nameservers of ResolvConf.
	Servers []string
	// ResolvConf is the resolver configuration read when Servers is
	// empty: its nameserver lines, and its attempts option. When it
	// cannot be read or names no server, every name is looked up with
	// Fallback. Defaults to /etc/resolv.conf.
	ResolvConf string
	// HostsFile lists names answered without asking DNS, as the system's
	// resolver does; it is read again when it changes. Defaults to
	// /etc/hosts.
	HostsFile string
	// Timeout bounds one query to one server. Defaults to 2 s.
	Timeout time.Duration
	// Attempts is how many times each server is asked before the lookup
	// falls back. Defaults to resolv.conf's attempts option, 2 without
	// one.
	Attempts int
	// MinTTL is the least time an answer is kept, whatever its TTL (an
	// answer with a TTL of 0 included); answers from Fallback, which come
	// without a TTL, are kept that long. Defaults to 5 s.
	MinTTL time.Duration
	// MaxTTL is the longest time an answer is kept, whatever its TTL.
	// Defaults to 5 minutes.
	MaxTTL time.Duration
	// MaxEntries bounds the answers kept; the least recently used goes
	// first. Defaults to 4096.
	MaxEntries int
	// Fallback looks a name up when the servers cannot answer it
	// (unreachable, timing out, SERVFAIL, REFUSED, a malformed answer)
	// or when there are none. Defaults to net.DefaultResolver.
	Fallback Resolver
	// Now is the clock that ages answers. Defaults to time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c with the zero fields set to their
// defaults. Servers and Attempts are read from ResolvConf by
// [NewResolver].
func (c DNSConfig) WithDefaults() DNSConfig {
	if c.ResolvConf == "" {
		c.ResolvConf = "/etc/resolv.conf"
	}
	if c.HostsFile == "" {
		c.HostsFile = "/etc/hosts"
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.MinTTL == 0 {
		c.MinTTL = 5 * time.Second
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = 5 * time.Minute
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = 4096
	}
	if c.Fallback == nil {
		c.Fallback = net.DefaultResolver
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c DNSConfig) validate() error {
	switch {
	case c.Timeout < 0, c.MinTTL < 0, c.MaxTTL < 0:
		return errors.New("egress: DNS timeout and TTLs must not be negative")
	case c.MinTTL > c.MaxTTL:
		return errors.New("egress: DNS min TTL must not exceed the max TTL")
	case c.Attempts < 0, c.MaxEntries < 0:
		return errors.New("egress: DNS attempts and cache size must not be negative")
	}
	return nil
}

// CachingResolver looks host names up for the SSRF-guarded client and keeps
// each answer for its TTL, bounded by a minimum and a maximum, in a cache
// of bounded size: a webhook host is asked once per TTL, not once per
// connection.
//
// Names listed in the hosts file are answered from it, and "localhost" and
// names under ".localhost" by the loopback addresses (RFC 6761), without
// asking DNS. Other names are asked, as fully qualified names (no search
// list), to the configured servers: A and AAAA at once, over UDP, again
// over TCP when an answer is truncated, following CNAME chains; IPv4
// addresses come first. A name that does not exist (or has no address) is
// remembered for its negative TTL (the SOA's), bounded the same way. When
// the servers cannot answer, the fallback resolver is asked and its answer
// kept for the minimum TTL. Lookups of one name at once share one query.
//
// The resolver only finds addresses: the client's dialer checks every
// address against the [Policy], cached or not.
type CachingResolver struct {
	cfg      DNSConfig
	servers  []string
	hosts    *hostsFile
	udp, tcp *dns.Client
	cache    *lru.Cache[string, answer]
	flight   singleflight.Group
}

// answer is a lookup's result, kept until expires: the addresses, or none
// for a name that does not exist or has no address of the kind asked.
type answer struct {
	addrs   []netip.Addr
	expires time.Time
}

var _ Resolver = (*CachingResolver)(nil)

// NewResolver returns a caching resolver configured by cfg.
func NewResolver(cfg DNSConfig) (*CachingResolver, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	servers := cfg.Servers
	port := "53"
	if len(servers) == 0 {
		// A missing or unreadable resolv.conf leaves no server: every
		// lookup goes to the fallback, as the standard library does.
		if rc, err := dns.ClientConfigFromFile(cfg.ResolvConf); err == nil {
			servers, port = rc.Servers, rc.Port
			if cfg.Attempts == 0 {
				cfg.Attempts = rc.Attempts
			}
		}
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 2
	}
	r := &CachingResolver{cfg: cfg, hosts: newHostsFile(cfg.HostsFile, cfg.Now)}
	for _, s := range servers {
		addr, err := serverAddr(s, port)
		if err != nil {
			return nil, err
		}
		r.servers = append(r.servers, addr)
	}
	r.udp = &dns.Client{Net: "udp", Timeout: cfg.Timeout}
	r.tcp = &dns.Client{Net: "tcp", Timeout: cfg.Timeout}
	var err error
	if r.cache, err = lru.New[string, answer](max(cfg.MaxEntries, 1)); err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	return r, nil
}

// serverAddr returns a DNS server's address as host:port, port defaulting
// to def. The host must be an IP address.
func serverAddr(s, def string) (string, error) {
	host, port := s, def
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", fmt.Errorf("egress: DNS server %q is not an IP address", s)
	}
	return net.JoinHostPort(host, port), nil
}

// Servers returns the DNS servers asked, in order (none: every lookup goes
// to the fallback).
func (r *CachingResolver) Servers() []string { return slices.Clone(r.servers) }

// fallbackTimeout bounds a lookup by the fallback resolver.
const fallbackTimeout = 10 * time.Second

// loopback4 and loopback6 answer "localhost".
var (
	loopback4 = netip.MustParseAddr("127.0.0.1")
	loopback6 = netip.IPv6Loopback()
)

// LookupNetIP returns the addresses of host: "ip" for IPv4 and IPv6 (IPv4
// first), "ip4" or "ip6" for one family. A name that does not exist gives a
// [*net.DNSError] whose IsNotFound is set. It honours ctx, while the query
// it waits for goes on for the other lookups of the name and the cache.
func (r *CachingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	switch network {
	case "ip", "ip4", "ip6":
	default:
		return nil, &net.DNSError{Err: "unsupported network " + network, Name: host}
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if a, err := netip.ParseAddr(name); err == nil {
		return found(filterFamily([]netip.Addr{a}, network), host)
	}
	if addrs, ok := r.hosts.lookup(name); ok {
		return found(filterFamily(addrs, network), host)
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return found(filterFamily([]netip.Addr{loopback4, loopback6}, network), host)
	}
	if _, ok := dns.IsDomainName(name); !ok || name == "" || strings.Contains(name, "..") {
		return nil, &net.DNSError{Err: "invalid host name", Name: host, IsNotFound: true}
	}
	key := network + " " + name
	if a, ok := r.cache.Get(key); ok {
		if r.cfg.Now().Before(a.expires) {
			return found(a.addrs, host)
		}
		r.cache.Remove(key)
	}
	ch := r.flight.DoChan(key, func() (any, error) { return r.resolve(key, network, name) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return found(res.Val.(answer).addrs, host)
	case <-ctx.Done():
		return nil, &net.DNSError{Err: ctx.Err().Error(), Name: host, IsTimeout: errors.Is(ctx.Err(), context.DeadlineExceeded)}
	}
}

// found returns a copy of addrs, or the not-found error when there are
// none.
func found(addrs []netip.Addr, host string) ([]netip.Addr, error) {
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(addrs), nil
}

// filterFamily keeps the addresses of network's family.
func filterFamily(addrs []netip.Addr, network string) []netip.Addr {
	if network == "ip" {
		return addrs
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.Unmap().Is4() == (network == "ip4") {
			out = append(out, a)
		}
	}
	return out
}

// resolve asks the servers for name and caches the answer under key; when
// they cannot answer, it asks the fallback.
func (r *CachingResolver) resolve(key, network, name string) (answer, error) {
	if len(r.servers) == 0 {
		return r.fallback(key, network, name, nil)
	}
	fqdn := dns.Fqdn(name)
	types := []uint16{dns.TypeA, dns.TypeAAAA}
	switch network {
	case "ip4":
		types = types[:1]
	case "ip6":
		types = types[1:]
	}
	msgs := make([]*dns.Msg, len(types))
	errs := make([]error, len(types))
	var wg sync.WaitGroup
	for i := 1; i < len(types); i++ {
		wg.Go(func() { msgs[i], errs[i] = r.query(fqdn, types[i]) })
	}
	msgs[0], errs[0] = r.query(fqdn, types[0])
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return r.fallback(key, network, name, err)
	}
	var addrs []netip.Addr
	ttl := uint32(1<<32 - 1)
	for i, m := range msgs {
		got, t := extract(m, fqdn, types[i])
		addrs = append(addrs, got...)
		ttl = min(ttl, t)
	}
	keep := min(max(time.Duration(ttl)*time.Second, r.cfg.MinTTL), r.cfg.MaxTTL)
	a := answer{addrs: addrs, expires: r.cfg.Now().Add(keep)}
	r.cache.Add(key, a)
	return a, nil
}

// fallback looks name up with the fallback resolver, after the servers
// failed with cause (nil: there are none), and keeps the answer, or the
// name's absence, for the minimum TTL.
func (r *CachingResolver) fallback(key, network, name string, cause error) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
	defer cancel()
	addrs, err := r.cfg.Fallback.LookupNetIP(ctx, network, name)
	var de *net.DNSError
	if err != nil && !(errors.As(err, &de) && de.IsNotFound) {
		if cause != nil {
			err = fmt.Errorf("%w (the DNS servers failed too: %w)", err, cause)
		}
		return answer{}, err
	}
	addrs = slices.Clone(addrs) // the fallback's own, perhaps
	for i, a := range addrs {
		if a.Is4In6() {
			addrs[i] = a.Unmap() // the standard resolver's IPv4 answers
		}
	}
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
		switch {
		case a.Is4() == b.Is4():
			return 0
		case a.Is4():
			return -1
		}
		return 1
	})
	a := answer{addrs: addrs, expires: r.cfg.Now().Add(r.cfg.MinTTL)}
	r.cache.Add(key, a)
	return a, nil
}

// RcodeError is a DNS server's refusal to answer (SERVFAIL, REFUSED...).
type RcodeError struct {
	// Server is the server that answered.
	Server string
	// Rcode is the DNS response code.
	Rcode int
}

func (e *RcodeError) Error() string {
	return fmt.Sprintf("DNS server %s answered %s", e.Server, dns.RcodeToString[e.Rcode])
}

// errMismatch is a DNS answer to another question than the one asked.
var errMismatch = errors.New("DNS answer to another question")

// query asks the servers, each up to Attempts times, for fqdn's records of
// qtype, over TCP again when the UDP answer is truncated. It returns the
// first answer that says the name exists or does not exist.
func (r *CachingResolver) query(fqdn string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.SetEdns0(1232, false) // the DNS flag day's size: no fragmented UDP
	var last error
	for range r.cfg.Attempts {
		for _, server := range r.servers {
			in, err := r.exchange(m, server)
			if err == nil {
				return in, nil
			}
			last = err
		}
	}
	return nil, last
}

// exchange asks server m's question once.
func (r *CachingResolver) exchange(m *dns.Msg, server string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	in, _, err := r.udp.ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		in, _, err = r.tcp.ExchangeContext(ctx, m, server)
	}
	switch {
	case err != nil:
		return nil, err
	case len(in.Question) != 1 || !strings.EqualFold(in.Question[0].Name, m.Question[0].Name) || in.Question[0].Qtype != m.Question[0].Qtype:
		return nil, errMismatch
	case in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError:
		return nil, &RcodeError{Server: server, Rcode: in.Rcode}
	}
	return in, nil
}

// maxCNAMEs bounds the CNAME chain followed in one answer.
const maxCNAMEs = 8

// extract returns the addresses m gives fqdn for qtype, following its
// CNAME chain, and the least TTL of the records used; for an answer
// without addresses, the negative TTL its SOA gives (0 without one).
func extract(m *dns.Msg, fqdn string, qtype uint16) ([]netip.Addr, uint32) {
	name, ttl := fqdn, uint32(1<<32-1)
	for range maxCNAMEs {
		next := ""
		for _, rr := range m.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, name) {
				next, ttl = c.Target, min(ttl, c.Hdr.Ttl)
				break
			}
		}
		if next == "" {
			break
		}
		name = next
	}
	var addrs []netip.Addr
	if m.Rcode == dns.RcodeSuccess {
		for _, rr := range m.Answer {
			if !strings.EqualFold(rr.Header().Name, name) {
				continue
			}
			var a netip.Addr
			switch v := rr.(type) {
			case *dns.A:
				if qtype != dns.TypeA {
					continue
				}
				a, _ = netip.AddrFromSlice(v.A.To4())
			case *dns.AAAA:
				if qtype != dns.TypeAAAA {
					continue
				}
				a, _ = netip.AddrFromSlice(v.AAAA.To16())
			default:
				continue
			}
			if a.IsValid() && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
				ttl = min(ttl, rr.Header().Ttl)
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, ttl
	}
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return nil, min(soa.Hdr.Ttl, soa.Minttl)
		}
	}
	return nil, 0
}
