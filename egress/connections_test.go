package egress

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitUntil polls cond until it holds, failing the test after a generous
// deadline: the condition is a positive signal, the deadline a liveness
// bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gated is a handler that holds its first n requests until release is
// closed, telling arrived of each one, and answers the others at once.
func gated(n int64, arrived chan<- struct{}, release <-chan struct{}) http.HandlerFunc {
	var seen atomic.Int64
	return func(w http.ResponseWriter, _ *http.Request) {
		if seen.Add(1) <= n {
			arrived <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}
}

// getAll sends n requests to url at once and waits for their answers,
// drained and closed.
func getAll(t *testing.T, c *http.Client, url string, n int) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := get(t.Context(), c, url)
			if err != nil {
				t.Error(err)
				return
			}
			_ = DrainClose(resp.Body, 1024)
		})
	}
	return &wg
}

// TestIdleConnectionsBoundedPerHost: sends in flight to one host each get a
// connection; once they end, the pool keeps MaxIdleConnsPerHost of them and
// closes the rest, and the next sends reuse those kept.
func TestIdleConnectionsBoundedPerHost(t *testing.T) {
	t.Parallel()
	const inFlight, keep = 8, 2
	arrived, release := make(chan struct{}, inFlight), make(chan struct{})
	rcv := newReceiver(t, gated(inFlight, arrived, release))
	c := newClient(t, Config{Allow: loopback, MaxIdleConnsPerHost: keep})
	wg := getAll(t, c, rcv.URL, inFlight)
	for range inFlight {
		<-arrived
	}
	close(release)
	wg.Wait()
	if n := rcv.conns.Load(); n != inFlight {
		t.Fatalf("%d connections for %d sends at once", n, inFlight)
	}
	waitUntil(t, "the connections beyond the per-host bound to close", func() bool { return rcv.closed.Load() == inFlight-keep })
	getAll(t, c, rcv.URL, keep).Wait()
	if n := rcv.conns.Load(); n != inFlight {
		t.Errorf("%d connections after %d more sends, want %d: the idle ones reused", n, keep, inFlight)
	}
}

// TestIdleConnectionsBoundedInTotal: the pool keeps MaxIdleConns idle
// connections over every host.
func TestIdleConnectionsBoundedInTotal(t *testing.T) {
	t.Parallel()
	const perHost, keep = 3, 3
	arrived, release := make(chan struct{}, 2*perHost), make(chan struct{})
	a := newReceiver(t, gated(perHost, arrived, release))
	b := newReceiver(t, gated(perHost, arrived, release))
	c := newClient(t, Config{Allow: loopback, MaxIdleConns: keep})
	wa, wb := getAll(t, c, a.URL, perHost), getAll(t, c, b.URL, perHost)
	for range 2 * perHost {
		<-arrived
	}
	close(release)
	wa.Wait()
	wb.Wait()
	waitUntil(t, "the connections beyond the total bound to close", func() bool {
		return a.closed.Load()+b.closed.Load() == 2*perHost-keep
	})
}

// TestIdleConnectionsClosedAfterTimeout: an idle connection is closed once
// IdleConnTimeout passes, and the next send opens a new one.
func TestIdleConnectionsClosedAfterTimeout(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, ok)
	c := newClient(t, Config{Allow: loopback, IdleConnTimeout: 50 * time.Millisecond})
	getAll(t, c, rcv.URL, 1).Wait()
	waitUntil(t, "the idle connection to close", func() bool { return rcv.closed.Load() == 1 })
	getAll(t, c, rcv.URL, 1).Wait()
	if n := rcv.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestTLSSessionsResumedPerHost: a new connection to a host resumes the
// TLS session of the previous one (no full handshake); sessions are kept
// per host name, in a bounded cache, and can be switched off.
func TestTLSSessionsResumedPerHost(t *testing.T) {
	t.Parallel()
	rcv := startReceiver(t, ok, true)
	port := strconv.Itoa(rcv.Listener.Addr().(*net.TCPAddr).Port)
	pool := x509.NewCertPool()
	pool.AddCert(rcv.Certificate())
	// The test certificate names example.com and 127.0.0.1: two hosts.
	byName := "https://example.com:" + port + "/"
	byIP := "https://127.0.0.1:" + port + "/"
	for _, tc := range []struct {
		name    string
		size    int
		urls    []string
		resumed []bool
	}{
		{"resumed per host", 0, []string{byName, byName, byIP, byName, byIP}, []bool{false, true, false, true, true}},
		{"bounded cache", 1, []string{byName, byIP, byName, byName}, []bool{false, false, false, true}},
		{"disabled", -1, []string{byName, byName}, []bool{false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, Config{
				Allow: loopback, TLSSessionCacheSize: tc.size,
				Resolver:  resolverMap{"example.com": {netip.MustParseAddr("127.0.0.1")}},
				TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			})
			before := rcv.conns.Load()
			for i, u := range tc.urls {
				c.CloseIdleConnections() // a new connection, so a new handshake
				resp, err := get(t.Context(), c, u)
				if err != nil {
					t.Fatal(err)
				}
				_ = DrainClose(resp.Body, 1024)
				if resp.TLS == nil || resp.TLS.DidResume != tc.resumed[i] {
					t.Errorf("request %d to %s: resumed %v, want %v", i+1, u, resp.TLS != nil && resp.TLS.DidResume, tc.resumed[i])
				}
			}
			if n := rcv.conns.Load() - before; n != int64(len(tc.urls)) {
				t.Errorf("%d connections for %d requests", n, len(tc.urls))
			}
		})
	}
}

// TestCachedAnswersStillChecked: the SSRF check runs on the address dialled
// whether the answer came from DNS or from the cache, and a name that
// changes its answer to a forbidden address (DNS rebinding) is refused once
// its cached answer expires.
func TestCachedAnswersStillChecked(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, ok)
	port := strconv.Itoa(rcv.Listener.Addr().(*net.TCPAddr).Port)
	srv := newDNSServer(t)
	srv.add(t, "evil.test. 3600 IN A 169.254.169.254", "rebind.test. 30 IN A 127.0.0.1")
	clk := newClock()
	c := newClient(t, Config{Allow: loopback, DNS: DNSConfig{Servers: []string{srv.addr}, HostsFile: noHosts(t), Now: clk.now}})
	blocked := func(host string, want string) {
		t.Helper()
		c.CloseIdleConnections()
		resp, err := get(t.Context(), c, "http://"+host+":"+port+"/")
		if err == nil {
			_ = resp.Body.Close()
			t.Fatalf("%s: request succeeded", host)
		}
		var be *BlockedError
		if !errors.As(err, &be) || be.Addr != netip.MustParseAddr(want) {
			t.Fatalf("%s: err = %v, want %s blocked", host, err, want)
		}
	}
	allowed := func(host string) {
		t.Helper()
		c.CloseIdleConnections()
		resp, err := get(t.Context(), c, "http://"+host+":"+port+"/")
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		_ = DrainClose(resp.Body, 1024)
	}
	blocked("evil.test", "169.254.169.254")
	blocked("evil.test", "169.254.169.254") // from the cache
	if n := srv.questions("evil.test", "A"); n != 1 {
		t.Fatalf("asked %d times, want 1: the second refusal came from the cached answer", n)
	}
	allowed("rebind.test")
	srv.set(t, "rebind.test", "rebind.test. 30 IN A 10.0.0.1")
	allowed("rebind.test") // the cached answer
	clk.advance(31 * time.Second)
	blocked("rebind.test", "10.0.0.1")
	if n := rcv.hits.Load(); n != 2 {
		t.Errorf("the receiver got %d requests, want 2", n)
	}
}
