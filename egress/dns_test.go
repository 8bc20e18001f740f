package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsServer is an authoritative DNS server on 127.0.0.1 (UDP and TCP on one
// port) answering from a zone the test edits, counting the questions it
// gets.
type dnsServer struct {
	addr string

	mu      sync.Mutex
	zone    map[string][]dns.RR // owner name (fqdn, lower case) → records
	rcode   map[string]int      // owner name → forced response code
	asked   map[string]int      // "name TYPE" → questions
	viaTCP  map[string]int      // "name TYPE" → questions over TCP
	gate    chan struct{}       // when set, answers wait for it to close
	waiting chan string         // told each question that waits at the gate
	// truncate makes UDP answers empty and truncated (TC), so that the
	// client asks again over TCP.
	truncate bool
}

func newDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	s := &dnsServer{zone: map[string][]dns.RR{}, rcode: map[string]int{}, asked: map[string]int{}, viaTCP: map[string]int{}}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 { // a UDP port whose TCP twin is free too
		p, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if l, err := net.Listen("tcp", p.LocalAddr().String()); err == nil {
			pc, ln = p, l
			break
		}
		_ = p.Close()
	}
	if pc == nil {
		t.Fatal("no free UDP and TCP port pair")
	}
	s.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: ln, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

// add puts records, in zone-file syntax, into the zone.
func (s *dnsServer) add(t *testing.T, records ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.ToLower(rr.Header().Name)
		s.zone[name] = append(s.zone[name], rr)
	}
}

// set replaces the records of name.
func (s *dnsServer) set(t *testing.T, name string, records ...string) {
	t.Helper()
	s.mu.Lock()
	delete(s.zone, dns.Fqdn(name))
	s.mu.Unlock()
	s.add(t, records...)
}

// configure changes the server's behaviour under its lock.
func (s *dnsServer) configure(fn func(s *dnsServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

// questions returns how many times name was asked for qtype ("A", "AAAA").
func (s *dnsServer) questions(name, qtype string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[dns.Fqdn(name)+" "+qtype]
}

func (s *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	key := name + " " + dns.TypeToString[q.Qtype]
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	s.mu.Lock()
	s.asked[key]++
	if !udp {
		s.viaTCP[key]++
	}
	gate, waiting := s.gate, s.waiting
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if rc, ok := s.rcode[name]; ok {
		m.Rcode = rc
	} else {
		// Follow CNAMEs within the zone, as a recursive server would.
		owner, known := name, false
		for range 8 {
			recs, ok := s.zone[owner]
			known = known || ok
			next := ""
			for _, rr := range recs {
				if c, ok := rr.(*dns.CNAME); ok && q.Qtype != dns.TypeCNAME {
					m.Answer = append(m.Answer, rr)
					next = strings.ToLower(c.Target)
				} else if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, rr)
				}
			}
			if next == "" {
				break
			}
			owner = next
		}
		if !known {
			m.Rcode = dns.RcodeNameError
		}
		if len(m.Answer) == 0 {
			soa, _ := dns.NewRR("test. 3600 IN SOA ns.test. admin.test. 1 3600 600 86400 30")
			m.Ns = append(m.Ns, soa)
		}
	}
	if udp && s.truncate {
		m.Answer, m.Truncated = nil, true
	}
	s.mu.Unlock()
	if gate != nil {
		waiting <- key
		<-gate
	}
	_ = w.WriteMsg(m)
}

// clock is a test clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func noHosts(t *testing.T) string        { return filepath.Join(t.TempDir(), "hosts") }
func addrs(list ...string) []netip.Addr  { return mapAddrs(list) }
func mapAddrs(list []string) []netip.Addr {
	out := make([]netip.Addr, 0, len(list))
	for _, s := range list {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// newTestResolver returns a resolver asking srv, on clk, with no hosts
// file.
func newTestResolver(t *testing.T, srv *dnsServer, clk *clock, mutate ...func(*DNSConfig)) *CachingResolver {
	t.Helper()
	cfg := DNSConfig{Servers: []string{srv.addr}, HostsFile: noHosts(t), Now: clk.now, Fallback: resolverMap{}}
	for _, m := range mutate {
		m(&cfg)
	}
	r, err := NewResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func lookup(t *testing.T, r Resolver, network, host string) ([]netip.Addr, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return r.LookupNetIP(ctx, network, host)
}

func mustLookup(t *testing.T, r Resolver, network, host string, want ...string) {
	t.Helper()
	got, err := lookup(t, r, network, host)
	if err != nil {
		t.Fatalf("lookup %s %s: %v", network, host, err)
	}
	if !slices.Equal(got, mapAddrs(want)) {
		t.Fatalf("lookup %s %s = %v, want %v", network, host, got, want)
	}
}

func TestResolverKeepsAnswersForTheirTTL(t *testing.T) {
	t.Parallel()
	srv := newDNSServer(t)
	srv.add(t, "hooks.test. 60 IN A 127.0.0.7", "hooks.test. 60 IN AAAA 2001:db8::7", "hooks.test. 60 IN A 127.0.0.8")
	clk := newClock()
	r := newTestResolver(t, srv, clk)
	for range 3 {
		mustLookup(t, r, "ip", "hooks.test", "127.0.0.7", "127.0.0.8", "2001:db8::7")
	}
	mustLookup(t, r, "ip", "HOOKS.test.", "127.0.0.7", "127.0.0.8", "2001:db8::7") // the same name
	if a, aaaa := srv.questions("hooks.test", "A"), srv.questions("hooks.test", "AAAA"); a != 1 || aaaa != 1 {
		t.Fatalf("asked A %d, AAAA %d times for four lookups within the TTL, want 1 each", a, aaaa)
	}
	clk.advance(59 * time.Second)
	mustLookup(t, r, "ip", "hooks.test", "127.0.0.7", "127.0.0.8", "2001:db8::7")
	if n := srv.questions("hooks.test", "A"); n != 1 {
		t.Fatalf("asked again %d times before the TTL ran out", n-1)
	}
	srv.set(t, "hooks.test", "hooks.test. 60 IN A 127.0.0.9")
	clk.advance(2 * time.Second)
	mustLookup(t, r, "ip", "hooks.test", "127.0.0.9")
	if n := srv.questions("hooks.test", "A"); n != 2 {
		t.Fatalf("asked %d times after the TTL ran out, want 2", n)
	}
}

func TestResolverTTLBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		ttl        string
		kept, gone time.Duration // still cached after kept, asked again after gone
	}{
		{"zero TTL kept for the minimum", "0", 4 * time.Second, 6 * time.Second},
		{"short TTL kept for the minimum", "1", 4 * time.Second, 6 * time.Second},
		{"TTL within the bounds", "120", 119 * time.Second, 121 * time.Second},
		{"day-long TTL capped at the maximum", "86400", 4 * time.Minute, 6 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newDNSServer(t)
			srv.add(t, "bounds.test. "+tc.ttl+" IN A 127.0.0.7")
			clk := newClock()
			r := newTestResolver(t, srv, clk, func(c *DNSConfig) { c.MinTTL, c.MaxTTL = 5*time.Second, 5*time.Minute })
			mustLookup(t, r, "ip4", "bounds.test", "127.0.0.7")
			clk.advance(tc.kept)
			mustLookup(t, r, "ip4", "bounds.test", "127.0.0.7")
			if n := srv.questions("bounds.test", "A"); n != 1 {
				t.Fatalf("asked %d times within %s, want 1", n, tc.kept)
			}
			clk.advance(tc.gone - tc.kept)
			mustLookup(t, r, "ip4", "bounds.test", "127.0.0.7")
			if n := srv.questions("bounds.test", "A"); n != 2 {
				t.Fatalf("asked %d times after %s, want 2", n, tc.gone)
			}
			if n := srv.questions("bounds.test", "AAAA"); n != 0 {
				t.Errorf("an ip4 lookup asked for AAAA %d times", n)
			}
		})
	}
}

func TestResolverRemembersMissingNames(t *testing.T) {
	t.Parallel()
	srv := newDNSServer(t)
	srv.add(t, "v6only.test. 60 IN AAAA 2001:db8::1")
	clk := newClock()
	r := newTestResolver(t, srv, clk)
	for _, host := range []string{"nxdomain.test", "v6only.test"} {
		for range 2 {
			_, err := lookup(t, r, "ip4", host)
			var de *net.DNSError
			if !errors.As(err, &de) || !de.IsNotFound || de.Name != host {
				t.Fatalf("%s: err = %v, want a not-found *net.DNSError", host, err)
			}
		}
		if n := srv.questions(host, "A"); n != 1 {
			t.Fatalf("%s: asked %d times within the negative TTL, want 1", host, n)
		}
	}
	// The SOA's negative TTL is 30 s.
	clk.advance(31 * time.Second)
	srv.add(t, "nxdomain.test. 60 IN A 127.0.0.3")
	mustLookup(t, r, "ip4", "nxdomain.test", "127.0.0.3")
}

func TestResolverFollowsCNAMEs(t *testing.T) {
	t.Parallel()
	srv := newDNSServer(t)
	srv.add(t,
		"www.hooks.test. 20 IN CNAME edge.cdn.test.",
		"edge.cdn.test. 300 IN CNAME pop.cdn.test.",
		"pop.cdn.test. 300 IN A 127.0.0.5",
		"stray.test. 300 IN A 127.0.0.66", // not on the chain
	)
	clk := newClock()
	r := newTestResolver(t, srv, clk)
	mustLookup(t, r, "ip4", "www.hooks.test", "127.0.0.5")
	clk.advance(21 * time.Second) // the chain's least TTL
	mustLookup(t, r, "ip4", "www.hooks.test", "127.0.0.5")
	if n := srv.questions("www.hooks.test", "A"); n != 2 {
		t.Errorf("asked %d times, want 2: the answer lives as long as the shortest TTL of its chain", n)
	}
}

func TestExtractIgnoresRecordsOffTheChain(t *testing.T) {
	t.Parallel()
	m := new(dns.Msg)
	m.SetQuestion("hooks.test.", dns.TypeA)
	for _, s := range []string{"other.test. 60 IN A 10.0.0.1", "hooks.test. 60 IN AAAA 2001:db8::1", "hooks.test. 90 IN A 127.0.0.1"} {
		rr, _ := dns.NewRR(s)
		m.Answer = append(m.Answer, rr)
	}
	got, ttl := extract(m, "hooks.test.", dns.TypeA)
	if !slices.Equal(got, addrs("127.0.0.1")) || ttl != 90 {
		t.Errorf("extract = %v, %d", got, ttl)
	}
}

func TestResolverTruncatedAnswerAskedOverTCP(t *testing.T) {
	t.Parallel()
	srv := newDNSServer(t)
	var recs, want []string
	for i := range 60 { // more than fits in the EDNS buffer
		a := "127.0." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1)
		recs, want = append(recs, "big.test. 60 IN A "+a), append(want, a)
	}
	srv.add(t, recs...)
	srv.configure(func(s *dnsServer) { s.truncate = true })
	r := newTestResolver(t, srv, newClock())
	mustLookup(t, r, "ip4", "big.test", want...)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if n := srv.viaTCP["big.test. A"]; n != 1 {
		t.Errorf("asked %d times over TCP, want 1", n)
	}
}

func TestResolverBoundedSize(t *testing.T) {
	t.Parallel()
	srv := newDNSServer(t)
	srv.add(t, "a.test. 300 IN A 127.0.0.1", "b.test. 300 IN A 127.0.0.2", "c.test. 300 IN A 127.0.0.3")
	r := newTestResolver(t, srv, newClock(), func(c *DNSConfig) { c.MaxEntries = 2 })
	for _, h := range []string{"a.test", "b.test", "c.test", "b.test", "a.test"} {
		if _, err := lookup(t, r, "ip4", h); err != nil {
			t.Fatal(err)
		}
	}
	// a was the least recently used when c came: dropped, and asked again.
	if a, b, c := srv.questions("a.test", "A"), srv.questions("b.test", "A"), srv.questions("c.test", "A"); a != 2 || b != 1 || c != 1 {
		t.Errorf("asked a %d, b %d, c %d times; want 2, 1, 1", a, b, c)
	}
	if n := r.cache.Len(); n > 2 {
		t.Errorf("%d answers kept, want at most 2", n)
	}
}

func TestResolverFallback(t *testing.T) {
	t.Parallel()
	closed := func(t *testing.T) string { // a port where nothing answers
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		_ = pc.Close()
		return addr
	}
	failing := func(rcode int) func(t *testing.T) string {
		return func(t *testing.T) string {
			srv := newDNSServer(t)
			srv.configure(func(s *dnsServer) { s.rcode["fb.test."] = rcode })
			return srv.addr
		}
	}
	for _, tc := range []struct {
		name   string
		config func(t *testing.T, c *DNSConfig)
	}{
		{"SERVFAIL", func(t *testing.T, c *DNSConfig) { c.Servers = []string{failing(dns.RcodeServerFailure)(t)} }},
		{"REFUSED", func(t *testing.T, c *DNSConfig) { c.Servers = []string{failing(dns.RcodeRefused)(t)} }},
		{"server unreachable", func(t *testing.T, c *DNSConfig) {
			c.Servers, c.Timeout, c.Attempts = []string{closed(t)}, 200*time.Millisecond, 1
		}},
		{"no resolv.conf", func(t *testing.T, c *DNSConfig) {
			c.Servers, c.ResolvConf = nil, filepath.Join(t.TempDir(), "resolv.conf")
		}},
		{"resolv.conf without a server", func(t *testing.T, c *DNSConfig) {
			c.Servers, c.ResolvConf = nil, filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(c.ResolvConf, []byte("search example.com\noptions ndots:2\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			fb := countingResolver{calls: &calls, m: resolverMap{"fb.test": addrs("2001:db8::9", "::ffff:127.0.0.9")}}
			clk := newClock()
			cfg := DNSConfig{HostsFile: noHosts(t), Now: clk.now, Fallback: fb}
			tc.config(t, &cfg)
			r, err := NewResolver(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The fallback's IPv4 answers come first, unmapped.
			mustLookup(t, r, "ip", "fb.test", "127.0.0.9", "2001:db8::9")
			mustLookup(t, r, "ip", "fb.test", "127.0.0.9", "2001:db8::9")
			if n := calls.Load(); n != 1 {
				t.Fatalf("fallback asked %d times within the minimum TTL, want 1", n)
			}
			clk.advance(6 * time.Second)
			mustLookup(t, r, "ip", "fb.test", "127.0.0.9", "2001:db8::9")
			if n := calls.Load(); n != 2 {
				t.Fatalf("fallback asked %d times after the minimum TTL, want 2", n)
			}
			if _, err := lookup(t, r, "ip", "missing.test"); !isNotFound(err) {
				t.Errorf("missing name: err = %v, want not found", err)
			}
		})
	}
}

func TestResolverFallbackFailureNotKept(t *testing.T) {
	t.Parallel()
	srv := newDNSServer(t)
	srv.configure(func(s *dnsServer) { s.rcode["down.test."] = dns.RcodeServerFailure })
	var calls atomic.Int64
	fb := countingResolver{calls: &calls, err: errors.New("fallback down")}
	r := newTestResolver(t, srv, newClock(), func(c *DNSConfig) { c.Fallback = fb })
	for range 2 {
		_, err := lookup(t, r, "ip", "down.test")
		var re *RcodeError
		if err == nil || !errors.As(err, &re) || re.Rcode != dns.RcodeServerFailure || !strings.Contains(err.Error(), "fallback down") {
			t.Fatalf("err = %v, want the fallback's error and the server's SERVFAIL", err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("fallback asked %d times, want 2: a failure is not kept", n)
	}
}

func TestResolverHostsFileAndLocalhost(t *testing.T) {
	t.Parallel()
	srv := newDNSServer(t)
	srv.add(t, "pinned.test. 60 IN A 127.0.0.99")
	hosts := filepath.Join(t.TempDir(), "hosts")
	write := func(s string) {
		if err := os.WriteFile(hosts, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# comment\n127.0.0.9 pinned.test Alias.Test. # trailing\n::1 pinned.test\n")
	clk := newClock()
	r := newTestResolver(t, srv, clk, func(c *DNSConfig) { c.HostsFile = hosts })
	mustLookup(t, r, "ip", "pinned.test", "127.0.0.9", "::1")
	mustLookup(t, r, "ip4", "alias.test", "127.0.0.9")
	mustLookup(t, r, "ip6", "pinned.test", "::1")
	mustLookup(t, r, "ip", "localhost", "127.0.0.1", "::1")
	mustLookup(t, r, "ip4", "api.localhost", "127.0.0.1")
	mustLookup(t, r, "ip", "127.0.0.4", "127.0.0.4")
	if n := srv.questions("pinned.test", "A") + srv.questions("localhost", "A"); n != 0 {
		t.Errorf("names in the hosts file went to DNS %d times", n)
	}
	// An edited file is read again (checked every few seconds).
	write("127.0.0.10 pinned.test\n")
	clk.advance(hostsCheckEvery)
	mustLookup(t, r, "ip", "pinned.test", "127.0.0.10")
	write("")
	clk.advance(hostsCheckEvery)
	mustLookup(t, r, "ip", "pinned.test", "127.0.0.99")
}

// gatedResolver returns a server holding record, whose answers wait until
// gate is closed (waiting is told of each question), and a resolver asking
// it.
func gatedResolver(t *testing.T, record string) (*dnsServer, *CachingResolver, chan struct{}, chan string) {
	t.Helper()
	srv := newDNSServer(t)
	srv.add(t, record)
	gate, waiting := make(chan struct{}), make(chan string, 64)
	srv.configure(func(s *dnsServer) { s.gate, s.waiting = gate, waiting })
	return srv, newTestResolver(t, srv, newClock()), gate, waiting
}

func TestResolverSharesOneQueryPerName(t *testing.T) {
	t.Parallel()
	const lookups = 20
	srv, r, gate, waiting := gatedResolver(t, "busy.test. 60 IN A 127.0.0.2")
	var wg sync.WaitGroup
	errs := make(chan error, lookups)
	for range lookups {
		wg.Go(func() {
			got, err := lookup(t, r, "ip4", "busy.test")
			if err == nil && !slices.Equal(got, addrs("127.0.0.2")) {
				err = errors.New("wrong answer")
			}
			errs <- err
		})
	}
	<-waiting // the first question is at the server
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.questions("busy.test", "A"); n != 1 {
		t.Errorf("%d lookups at once asked %d times, want 1", lookups, n)
	}
}

func TestResolverHonoursContext(t *testing.T) {
	t.Parallel()
	srv, r, gate, waiting := gatedResolver(t, "slow.test. 60 IN A 127.0.0.2")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := r.LookupNetIP(ctx, "ip4", "slow.test")
		done <- err
	}()
	<-waiting
	cancel()
	err := <-done
	var de *net.DNSError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("err = %v, want the lookup cancelled", err)
	}
	// The query went on: its answer serves the next lookup.
	close(gate)
	mustLookup(t, r, "ip4", "slow.test", "127.0.0.2")
	if n := srv.questions("slow.test", "A"); n != 1 {
		t.Errorf("asked %d times, want 1", n)
	}
}

func TestResolverRefusesInvalidNames(t *testing.T) {
	t.Parallel()
	srv := newDNSServer(t)
	r := newTestResolver(t, srv, newClock())
	for _, host := range []string{"", "a..b", strings.Repeat("x", 64) + ".test", strings.Repeat("abcdefgh.", 32) + "test"} {
		if _, err := lookup(t, r, "ip", host); !isNotFound(err) {
			t.Errorf("%q: err = %v, want not found", host, err)
		}
	}
	if _, err := lookup(t, r, "tcp", "hooks.test"); err == nil {
		t.Error("network tcp accepted")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.asked) != 0 {
		t.Errorf("invalid names reached the server: %v", srv.asked)
	}
}

func TestNewResolverValidates(t *testing.T) {
	t.Parallel()
	for _, cfg := range []DNSConfig{
		{MinTTL: -1},
		{MaxTTL: -time.Second},
		{MinTTL: time.Hour, MaxTTL: time.Minute},
		{Timeout: -1},
		{Attempts: -1},
		{MaxEntries: -1},
		{Servers: []string{"dns.example.com:53"}},
		{Servers: []string{"not an address"}},
	} {
		if _, err := NewResolver(cfg); err == nil {
			t.Errorf("NewResolver(%+v) accepted", cfg)
		}
	}
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 192.0.2.53\nnameserver 2001:db8::53\noptions attempts:3 timeout:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(DNSConfig{ResolvConf: rc})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Servers(); !slices.Equal(got, []string{"192.0.2.53:53", "[2001:db8::53]:53"}) || r.cfg.Attempts != 3 {
		t.Errorf("servers %v, attempts %d", got, r.cfg.Attempts)
	}
	r, err = NewResolver(DNSConfig{Servers: []string{"127.0.0.1", "[::1]:5353"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Servers(); !slices.Equal(got, []string{"127.0.0.1:53", "[::1]:5353"}) || r.cfg.MinTTL != 5*time.Second || r.cfg.MaxTTL != 5*time.Minute || r.cfg.MaxEntries != 4096 {
		t.Errorf("servers %v, config %+v", got, r.cfg)
	}
}

// TestDefaultResolverLocalhost: with the default configuration (the
// system's resolv.conf and hosts file), "localhost" resolves, as the tests
// and local receivers need.
func TestDefaultResolverLocalhost(t *testing.T) {
	t.Parallel()
	r, err := NewResolver(DNSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := lookup(t, r, "ip4", "localhost")
	if err != nil || len(got) == 0 || !got[0].IsLoopback() {
		t.Fatalf("localhost = %v, %v", got, err)
	}
}

func TestParseHosts(t *testing.T) {
	t.Parallel()
	got := parseHosts([]byte("127.0.0.1\tlocalhost LOCALHOST.\n" +
		"::1 localhost ip6-localhost # comment\n" +
		"not-an-ip name\n" +
		"10.0.0.1\n" +
		"# 10.0.0.2 commented\n" +
		"fe80::1%lo link.local\n" +
		"127.0.0.1 localhost\n"))
	want := map[string][]netip.Addr{
		"localhost":     addrs("127.0.0.1", "::1"),
		"ip6-localhost": addrs("::1"),
		"link.local":    addrs("fe80::1%lo"),
	}
	if len(got) != len(want) {
		t.Fatalf("parsed %v", got)
	}
	for name, a := range want {
		if !slices.Equal(got[name], a) {
			t.Errorf("%s = %v, want %v", name, got[name], a)
		}
	}
}

// FuzzParseHosts checks the hosts parser on arbitrary files: it never
// fails, and every name it returns is lower case, without a trailing dot,
// with valid addresses and no repeats.
func FuzzParseHosts(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1 localhost\n::1 localhost ip6-localhost\n",
		"# only a comment",
		"10.0.0.1 A.Example. b.example # x\n\n\t\n",
		"fe80::1%eth0 link\n",
		"1.2.3.4",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, list := range parseHosts(data) {
			if name == "" || name != strings.ToLower(name) || strings.HasSuffix(name, ".") || strings.ContainsAny(name, " \t#\n") {
				t.Fatalf("name %q", name)
			}
			if len(list) == 0 {
				t.Fatalf("%q has no address", name)
			}
			for i, a := range list {
				if !a.IsValid() || slices.Contains(list[:i], a) {
					t.Fatalf("%q: addresses %v", name, list)
				}
			}
		}
	})
}

// countingResolver counts lookups and answers from m, or with err.
type countingResolver struct {
	calls *atomic.Int64
	m     resolverMap
	err   error
}

func (c countingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	c.calls.Add(1)
	if c.err != nil {
		return nil, c.err
	}
	return c.m.LookupNetIP(ctx, network, host)
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// FuzzExtract reads arbitrary DNS answers as a server might send them:
// extract never fails, and gives only addresses of the family asked,
// without repeats, with a TTL no longer than the records it used.
func FuzzExtract(f *testing.F) {
	for _, records := range [][]string{
		{"hooks.test. 60 IN A 127.0.0.1", "hooks.test. 30 IN AAAA 2001:db8::1"},
		{"hooks.test. 20 IN CNAME edge.test.", "edge.test. 300 IN A 10.0.0.1", "edge.test. 300 IN A 10.0.0.1"},
		{"hooks.test. 20 IN CNAME hooks.test."},
		{"other.test. 60 IN A 127.0.0.2"},
	} {
		m := new(dns.Msg)
		m.SetQuestion("hooks.test.", dns.TypeA)
		for _, r := range records {
			rr, _ := dns.NewRR(r)
			m.Answer = append(m.Answer, rr)
		}
		soa, _ := dns.NewRR("test. 3600 IN SOA ns.test. admin.test. 1 3600 600 86400 30")
		m.Ns = append(m.Ns, soa)
		data, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, true)
		f.Add(data, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, v4 bool) {
		m := new(dns.Msg)
		if m.Unpack(data) != nil {
			return
		}
		qtype := dns.TypeAAAA
		if v4 {
			qtype = dns.TypeA
		}
		got, ttl := extract(m, "hooks.test.", qtype)
		longest := uint32(0)
		for _, rr := range append(append([]dns.RR(nil), m.Answer...), m.Ns...) {
			longest = max(longest, rr.Header().Ttl)
			if soa, ok := rr.(*dns.SOA); ok {
				longest = max(longest, soa.Minttl)
			}
		}
		if ttl > longest && len(got) > 0 {
			t.Fatalf("TTL %d, longer than every record's", ttl)
		}
		for i, a := range got {
			if !a.IsValid() || a.Is4() != v4 || slices.Contains(got[:i], a) {
				t.Fatalf("addresses %v for %s", got, dns.TypeToString[qtype])
			}
		}
	})
}
