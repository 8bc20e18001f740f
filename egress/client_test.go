package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// resolverMap answers lookups from a fixed table, like a DNS server an
// attacker controls.
type resolverMap map[string][]netip.Addr

func (m resolverMap) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// receiver is an HTTP server on 127.0.0.1 that counts requests and
// connections.
type receiver struct {
	*httptest.Server
	hits   atomic.Int64
	conns  atomic.Int64
	closed atomic.Int64
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver { return startReceiver(t, h, false) }

// startReceiver starts a receiver serving h, over TLS when useTLS is set.
func startReceiver(t *testing.T, h http.HandlerFunc, useTLS bool) *receiver {
	t.Helper()
	return startReceiverWith(t, h, useTLS, nil)
}

// startReceiverWith is [startReceiver] with configure applied to the
// server before it starts.
func startReceiverWith(t *testing.T, h http.HandlerFunc, useTLS bool, configure func(*http.Server)) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		h(w, req)
	}))
	r.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			r.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			r.closed.Add(1)
		}
	}
	if configure != nil {
		configure(r.Config)
	}
	if useTLS {
		r.StartTLS()
	} else {
		r.Start()
	}
	t.Cleanup(r.Close)
	return r
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

func newClient(t *testing.T, cfg Config) *http.Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func get(ctx context.Context, c *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

func TestClientBlocksResolvedAddresses(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, ok)
	port := rcv.Listener.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name  string
		addrs []string
	}{
		{"loopback", []string{"127.0.0.1"}},
		{"private", []string{"10.0.0.1"}},
		{"metadata", []string{"169.254.169.254"}},
		{"mapped loopback", []string{"::ffff:127.0.0.1"}},
		{"ipv6 loopback", []string{"::1"}},
		{"all blocked", []string{"10.0.0.1", "127.0.0.1", "fd00::1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var addrs []netip.Addr
			for _, a := range tc.addrs {
				addrs = append(addrs, netip.MustParseAddr(a))
			}
			c := newClient(t, Config{Resolver: resolverMap{"evil.test": addrs}})
			resp, err := get(t.Context(), c, "http://evil.test:"+strconv.Itoa(port)+"/x")
			if err == nil {
				_ = resp.Body.Close()
				t.Fatal("request to a host resolving to a blocked address succeeded")
			}
			var be *BlockedError
			if !errors.As(err, &be) {
				t.Fatalf("error %v is not a *BlockedError", err)
			}
			if be.Addr != addrs[0] {
				t.Errorf("blocked address %s, want %s", be.Addr, addrs[0])
			}
		})
	}
	t.Cleanup(func() {
		if n := rcv.hits.Load() + rcv.conns.Load(); n != 0 {
			t.Errorf("the receiver saw %d requests or connections", n)
		}
	})
}

func TestClientSkipsBlockedAddressesAmongAllowed(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, ok)
	port := rcv.Listener.Addr().(*net.TCPAddr).Port
	res := resolverMap{"mixed.test": {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("127.0.0.1")}}
	c := newClient(t, Config{Resolver: res, Allow: loopback})
	resp, err := get(t.Context(), c, "http://mixed.test:"+strconv.Itoa(port)+"/")
	if err != nil {
		t.Fatal(err)
	}
	_ = DrainClose(resp.Body, 1024)
	if rcv.hits.Load() != 1 {
		t.Errorf("hits = %d, want 1", rcv.hits.Load())
	}
}

// TestControlChecksDialledAddress dials past the resolver step: the check
// in ControlContext alone must refuse the connection.
func TestControlChecksDialledAddress(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()
	d := &dialer{timeout: time.Second}
	d.net = net.Dialer{ControlContext: d.control}
	conn, err := d.net.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err == nil {
		_ = conn.Close()
		t.Fatal("dial to loopback succeeded")
	}
	var be *BlockedError
	if !errors.As(err, &be) || be.Addr != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("dial error = %v, want a *BlockedError for 127.0.0.1", err)
	}
	// With the address allowed the same dial connects, so the refusal
	// above came from the check.
	d.policy.Allow = loopback
	conn, err = d.net.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	_ = ln.Close()
}

func TestClientLiteralAndNonCanonicalHosts(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, ok)
	port := strconv.Itoa(rcv.Listener.Addr().(*net.TCPAddr).Port)
	c := newClient(t, Config{Resolver: resolverMap{}})
	for _, host := range []string{"127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1", "[::ffff:127.0.0.1]"} {
		resp, err := get(t.Context(), c, "http://"+host+":"+port+"/")
		if err == nil {
			_ = resp.Body.Close()
			t.Errorf("%s: request succeeded", host)
			continue
		}
		var be *BlockedError
		if !errors.As(err, &be) {
			t.Errorf("%s: error %v is not a *BlockedError", host, err)
		}
	}
	if rcv.hits.Load() != 0 {
		t.Errorf("receiver hit %d times", rcv.hits.Load())
	}
}

func TestClientAllowListPermitsLoopback(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, ok)
	c := newClient(t, Config{Allow: loopback})
	resp, err := get(t.Context(), c, rcv.URL+"/hook")
	if err != nil {
		t.Fatal(err)
	}
	body, err := ReadLimited(resp.Body, 16)
	_ = DrainClose(resp.Body, 1024)
	if err != nil || string(body) != "ok" || resp.StatusCode != http.StatusOK {
		t.Errorf("got %d %q %v", resp.StatusCode, body, err)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target := newReceiver(t, ok)
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	})
	c := newClient(t, Config{Allow: loopback})
	resp, err := get(t.Context(), c, rcv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	_ = DrainClose(resp.Body, 1024)
	if resp.StatusCode != http.StatusFound {
		t.Errorf("status = %d, want 302", resp.StatusCode)
	}
	if !strings.HasPrefix(resp.Header.Get("Location"), target.URL) {
		t.Errorf("Location = %q", resp.Header.Get("Location"))
	}
	if target.hits.Load() != 0 {
		t.Error("the redirect target was requested")
	}
}

func TestClientRefusesCredentials(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, ok)
	c := newClient(t, Config{Allow: loopback})
	u := strings.Replace(rcv.URL, "http://", "http://user:pass@", 1)
	resp, err := get(t.Context(), c, u)
	if err == nil {
		_ = resp.Body.Close()
	}
	if !errors.Is(err, ErrInvalidURL) {
		t.Errorf("error = %v, want ErrInvalidURL", err)
	}
	if rcv.hits.Load() != 0 {
		t.Error("request with credentials reached the receiver")
	}
}

func TestClientReusesConnections(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 10000))
	})
	c := newClient(t, Config{Allow: loopback})
	for range 5 {
		resp, err := get(t.Context(), c, rcv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ReadLimited(resp.Body, 100); err != nil {
			t.Fatal(err)
		}
		if err := DrainClose(resp.Body, 64<<10); err != nil {
			t.Fatal(err)
		}
	}
	if n := rcv.conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1", n)
	}
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hang := func(r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" { // headers at once, then a body that never ends
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
		}
		hang(r)
	})
	t.Cleanup(func() { close(release) }) // runs before rcv.Close
	c := newClient(t, Config{Allow: loopback, Timeout: 50 * time.Millisecond})
	isTimeout := func(err error) bool {
		var ne net.Error
		var te *TimeoutError
		return errors.As(err, &ne) && ne.Timeout() && errors.As(err, &te) && te.Limit == 50*time.Millisecond &&
			strings.Contains(err.Error(), "no complete answer within 50ms")
	}

	t.Run("headers", func(t *testing.T) {
		resp, err := get(context.Background(), c, rcv.URL)
		if err == nil {
			_ = resp.Body.Close()
			t.Fatal("hanging server answered")
		}
		if !isTimeout(err) {
			t.Errorf("error = %v, want the client's timeout", err)
		}
	})
	t.Run("body", func(t *testing.T) {
		start := time.Now()
		resp, err := get(context.Background(), c, rcv.URL+"/body")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		if !isTimeout(err) {
			t.Errorf("body read error = %v, want the client's timeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the body read lasted %s", d)
		}
	})
	t.Run("shorter context deadline wins", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		resp, err := get(ctx, c, rcv.URL)
		if err == nil {
			_ = resp.Body.Close()
			t.Fatal("hanging server answered")
		}
		var te *TimeoutError
		if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) {
			t.Errorf("error = %v, want the context's deadline", err)
		}
	})
	t.Run("completed exchange", func(t *testing.T) {
		fast := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
		resp, err := get(context.Background(), c, fast.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "ok" {
			t.Errorf("body %q, %v", body, err)
		}
		if err := resp.Body.Close(); err != nil {
			t.Error(err)
		}
	})
}

func TestNewClientSettings(t *testing.T) {
	t.Parallel()
	c := newClient(t, Config{})
	tr := c.Transport.(*guard).tr
	if tr.Proxy != nil {
		t.Error("the transport uses a proxy")
	}
	if tr.MaxIdleConnsPerHost != 16 || tr.MaxIdleConns != 512 || tr.IdleConnTimeout != 30*time.Second {
		t.Errorf("idle connections: %d per host, %d in all, for %s", tr.MaxIdleConnsPerHost, tr.MaxIdleConns, tr.IdleConnTimeout)
	}
	if tr.TLSClientConfig.ClientSessionCache == nil {
		t.Error("no TLS session cache")
	}
	if g := c.Transport.(*guard); g.timeout != 15*time.Second || tr.TLSHandshakeTimeout != 5*time.Second {
		t.Errorf("timeouts %s, %s", g.timeout, tr.TLSHandshakeTimeout)
	}
	if c.CheckRedirect == nil {
		t.Error("redirects followed")
	}
	for _, cfg := range []Config{
		{Timeout: -1},
		{ConnectTimeout: -time.Second},
		{MaxIdleConnsPerHost: -1},
		{Allow: []netip.Prefix{{}}},
		{DNS: DNSConfig{MinTTL: time.Minute, MaxTTL: time.Second}},
		{DNS: DNSConfig{Servers: []string{"dns.example"}}},
	} {
		if _, err := NewClient(cfg); err == nil {
			t.Errorf("NewClient(%+v) accepted", cfg)
		}
	}
}

func TestReadLimited(t *testing.T) {
	t.Parallel()
	inf := infinite{}
	b, err := ReadLimited(inf, 1000)
	if err != nil || len(b) != 1000 {
		t.Errorf("read %d bytes, %v; want 1000", len(b), err)
	}
	b, err = ReadLimited(strings.NewReader("short"), 1000)
	if err != nil || string(b) != "short" {
		t.Errorf("read %q, %v", b, err)
	}
	if b, _ := ReadLimited(inf, 0); len(b) != 0 {
		t.Error("n = 0 read something")
	}
	rc := &countingCloser{Reader: io.LimitReader(inf, 1<<20)}
	if err := DrainClose(rc, 4096); err != nil {
		t.Fatal(err)
	}
	if !rc.closed || rc.read > 4096 {
		t.Errorf("closed=%v read=%d", rc.closed, rc.read)
	}
}

type infinite struct{}

func (infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

type countingCloser struct {
	io.Reader
	read   int
	closed bool
}

func (c *countingCloser) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.read += n
	return n, err
}

func (c *countingCloser) Close() error { c.closed = true; return nil }
