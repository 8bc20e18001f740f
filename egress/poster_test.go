package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newPoster(t *testing.T, cfg Config) *Poster {
	t.Helper()
	p, err := NewPoster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

func post(t *testing.T, p *Poster, url string) (Answer, error) {
	t.Helper()
	return p.Post(t.Context(), url, []Header{{Name: "Content-Type", Value: "application/json"}}, []byte(`{"a":1}`), make([]byte, 64), 1<<16)
}

// TestPosterAnswers: the status, Retry-After and the head of a failed
// answer's body come back; a redirect is not followed; a large body is
// not held (its head is read, the rest drained or the connection closed).
func TestPosterAnswers(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/busy":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "try again later")
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/big":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, strings.Repeat("x", 1<<20))
		case "/bigok":
			_, _ = io.WriteString(w, strings.Repeat("y", 1<<20))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	p := newPoster(t, Config{Allow: loopback})
	for _, tc := range []struct {
		path      string
		status    int
		retry     string
		head      string
		truncated bool
	}{
		{"/ok", 204, "", "", false},
		{"/busy", 503, "120", "try again later", false},
		{"/moved", 302, "", "", false},
		{"/big", 500, "", strings.Repeat("x", 64), true},
		{"/bigok", 200, "", "", false},
		{"/ok", 204, "", "", false}, // after the large bodies, still served
	} {
		a, err := post(t, p, rcv.URL+tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if a.Status != tc.status || a.RetryAfter != tc.retry || !strings.HasPrefix(string(a.Head), tc.head) || (tc.head == "" && len(a.Head) > 0 && tc.status < 300) || a.Truncated != tc.truncated {
			t.Errorf("%s: %+v (head %q)", tc.path, a, a.Head)
		}
	}
	if hits := rcv.hits.Load(); hits != 6 {
		t.Errorf("%d requests reached the receiver, want 6 (no redirect followed)", hits)
	}
}

// TestPosterReusesAndClosesConnections: sequential posts to a host reuse
// one connection; an idle one is closed after the idle timeout.
func TestPosterReusesAndClosesConnections(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, ok)
	p := newPoster(t, Config{Allow: loopback, IdleConnTimeout: 300 * time.Millisecond})
	for range 10 {
		if _, err := post(t, p, rcv.URL+"/"); err != nil {
			t.Fatal(err)
		}
	}
	if n := rcv.conns.Load(); n != 1 {
		t.Errorf("%d connections for 10 sequential posts, want 1", n)
	}
	for deadline := time.Now().Add(10 * time.Second); rcv.closed.Load() < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was never closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPosterChecksTheAddressDialled: a name whose answer is a forbidden
// address is refused at dial time (not sent), as is a literal forbidden
// address, and the refusal is recognised by Refused.
func TestPosterChecksTheAddressDialled(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, ok)
	port := strconv.Itoa(rcv.Listener.Addr().(*net.TCPAddr).Port)
	p := newPoster(t, Config{Resolver: resolverMap{
		"metadata.test": {netip.MustParseAddr("169.254.169.254")},
		"local.test":    {netip.MustParseAddr("127.0.0.1")},
	}})
	for _, u := range []string{"http://metadata.test:" + port + "/", "http://local.test:" + port + "/", "http://127.0.0.1:" + port + "/"} {
		_, err := post(t, p, u)
		if err == nil || !Refused(err) {
			t.Errorf("%s: %v, want a refusal", u, err)
		}
	}
	if hits := rcv.hits.Load(); hits != 0 {
		t.Errorf("%d requests reached a forbidden address", hits)
	}
}

// TestPosterTimeout: a receiver that never answers ends the exchange at
// the timeout (or the context's deadline, when earlier), as a net.Error
// whose Timeout is true.
func TestPosterTimeout(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	var once sync.Once
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { <-hang })
	t.Cleanup(func() { once.Do(func() { close(hang) }) })
	p := newPoster(t, Config{Allow: loopback, Timeout: 300 * time.Millisecond})
	_, err := post(t, p, rcv.URL+"/")
	var ne net.Error
	var te *TimeoutError
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &te) || te.Limit != 300*time.Millisecond {
		t.Fatalf("err = %v, want a timeout of 300ms", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Post(ctx, rcv.URL+"/", nil, []byte("{}"), nil, 0); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("with a shorter context deadline: %v", err)
	}
	done, cancelDone := context.WithCancel(t.Context())
	cancelDone()
	if _, err := p.Post(done, rcv.URL+"/", nil, []byte("{}"), nil, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("with a context already done: %v", err)
	}
	once.Do(func() { close(hang) })
}

// TestPosterResumesTLSPerHost: a new connection to a host resumes the TLS
// session of the previous one (as the receiver sees it), per host name.
func TestPosterResumesTLSPerHost(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var resumed []bool
	rcv := startReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumed = append(resumed, r.TLS != nil && r.TLS.DidResume)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}, true)
	port := strconv.Itoa(rcv.Listener.Addr().(*net.TCPAddr).Port)
	pool := x509.NewCertPool()
	pool.AddCert(rcv.Certificate())
	// The test certificate names example.com and 127.0.0.1: two hosts.
	byName := "https://example.com:" + port + "/"
	byIP := "https://127.0.0.1:" + port + "/"
	p := newPoster(t, Config{
		Allow:     loopback,
		Resolver:  resolverMap{"example.com": {netip.MustParseAddr("127.0.0.1")}},
		TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	})
	for _, u := range []string{byName, byName, byIP, byName, byIP} {
		p.CloseIdleConnections() // a new connection, so a new handshake
		if a, err := post(t, p, u); err != nil || a.Status != http.StatusNoContent {
			t.Fatalf("%s: %+v %v", u, a, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []bool{false, true, false, true, true}
	for i := range want {
		if resumed[i] != want[i] {
			t.Errorf("TLS resumption per request %v, want %v", resumed, want)
			break
		}
	}
}

// TestPosterKeepsConnectionsAcrossAnswerShapes: answers without a body
// (204), with a known length, chunked with a trailer, and refusals with a
// body are all read to their end and leave the connection reusable; an
// answer whose body ends with the connection (no length) closes it.
func TestPosterKeepsConnectionsAcrossAnswerShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		conns   int64
	}{
		{"no content", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, 1},
		{"known length", ok, 1},
		{"chunked with a trailer", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Trailer", "X-Checksum")
			_, _ = io.WriteString(w, "part one,")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
			w.Header().Set("X-Checksum", "abc")
		}, 1},
		{"refused with a body", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, "bad signature")
		}, 1},
		{"body ended by closing", func(w http.ResponseWriter, _ *http.Request) {
			conn, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = bw.WriteString("HTTP/1.1 200 OK\r\n\r\naccepted")
			_ = bw.Flush()
			_ = conn.Close()
		}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, tc.handler)
			p := newPoster(t, Config{Allow: loopback})
			for range 5 {
				if _, err := post(t, p, rcv.URL+"/"); err != nil {
					t.Fatal(err)
				}
			}
			if n := rcv.conns.Load(); n != tc.conns {
				t.Errorf("%d connections for 5 sequential posts, want %d", n, tc.conns)
			}
		})
	}
}

// TestPosterSkipsConnectionsClosedWhileIdle: a receiver whose idle
// timeout is shorter than the poster's closes the kept connections; the
// next post finds them closed before writing to any and goes on a new
// connection instead of failing.
func TestPosterSkipsConnectionsClosedWhileIdle(t *testing.T) {
	t.Parallel()
	const parallel = 4
	release := make(chan struct{})
	arrived := make(chan struct{}, parallel)
	rcv := startReceiverWith(t, gated(parallel, arrived, release), false, func(s *http.Server) { s.IdleTimeout = 50 * time.Millisecond })
	p := newPoster(t, Config{Allow: loopback, IdleConnTimeout: time.Minute})
	// Four posts at once leave four idle connections.
	wg := postAll(t, p, rcv.URL+"/", parallel, arrived)
	close(release)
	wg.Wait()
	for i := range 3 {
		waitUntil(t, "the receiver to close the idle connections", func() bool { return rcv.closed.Load() == rcv.conns.Load() })
		if _, err := post(t, p, rcv.URL+"/"); err != nil {
			t.Fatalf("post %d after the receiver closed the idle connections: %v", i, err)
		}
	}
	if hits, conns := rcv.hits.Load(), rcv.conns.Load(); hits != parallel+3 || conns != parallel+3 {
		t.Errorf("%d requests on %d connections, want %d on %d", hits, conns, parallel+3, parallel+3)
	}
}

// TestPosterCancelEndsTheExchange: cancelling the context of a send whose
// receiver takes its time ends the exchange at once, with the context's
// error (serve stopping does not wait for the webhook timeout).
func TestPosterCancelEndsTheExchange(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	arrived := make(chan struct{}, 1)
	rcv := newReceiver(t, func(http.ResponseWriter, *http.Request) {
		arrived <- struct{}{}
		<-hang
	})
	t.Cleanup(func() { close(hang) })
	p := newPoster(t, Config{Allow: loopback, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	start := time.Now()
	_, err := p.Post(ctx, rcv.URL+"/", nil, []byte("{}"), nil, 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("the cancelled exchange took %s", took)
	}
}

// TestPosterWaitingHoldsNoReadBuffer: sends waiting for slow receivers
// hold no header buffer: none is taken from the pool until an answer
// begins.
func TestPosterWaitingHoldsNoReadBuffer(t *testing.T) {
	t.Parallel()
	const n = 64
	release := make(chan struct{})
	arrived := make(chan struct{}, n)
	rcv := newReceiver(t, gated(n, arrived, release))
	p := newPoster(t, Config{Allow: loopback})
	wg := postAll(t, p, rcv.URL+"/", n, arrived)
	time.Sleep(50 * time.Millisecond) // the sends are all waiting for their answers
	if made := p.readersMade.Load(); made != 0 {
		t.Errorf("%d header buffers taken by %d waiting sends, want 0", made, n)
	}
	close(release)
	wg.Wait()
	if made := p.readersMade.Load(); made == 0 || made > n {
		t.Errorf("%d header buffers made for %d answers", made, n)
	}
}

// postAll starts n posts to url at once and returns when the receiver
// told arrived of each (see gated); the group ends with the posts.
func postAll(t *testing.T, p *Poster, url string, n int, arrived <-chan struct{}) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := post(t, p, url); err != nil {
				t.Error(err)
			}
		})
	}
	for range n {
		<-arrived
	}
	return &wg
}

// TestPosterSkipsAnIdleConnectionThatSpoke: a receiver that answers, then
// sends a 408 on the idle connection before closing it, does not have that
// 408 taken for the answer to the next post, which goes on a new
// connection and is answered by it.
func TestPosterSkipsAnIdleConnectionThatSpoke(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var requests, conns atomic.Int64
	spoke := make(chan struct{}, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				requests.Add(1)
				_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
				time.Sleep(20 * time.Millisecond)
				_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
				spoke <- struct{}{}
				time.Sleep(time.Second) // the connection stays open, with the 408 unread
			}()
		}
	}()
	p := newPoster(t, Config{Allow: loopback})
	url := "http://" + ln.Addr().String() + "/"
	for i := range 2 {
		a, err := post(t, p, url)
		if err != nil || a.Status != http.StatusNoContent {
			t.Fatalf("post %d: %+v %v, want 204", i, a, err)
		}
		<-spoke
	}
	if r, c := requests.Load(), conns.Load(); r != 2 || c != 2 {
		t.Errorf("%d requests on %d connections, want 2 on 2", r, c)
	}
}

// hangingResolver answers no lookup until its context ends.
type hangingResolver struct{}

func (hangingResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestPosterConnectTimeoutStaysItsOwn: a connection that cannot be made
// within the connect timeout ends the post then, reported as a connect
// failure, even when the context allows more time: it is not stretched to
// the context's deadline nor reported as the whole exchange's timeout.
func TestPosterConnectTimeoutStaysItsOwn(t *testing.T) {
	t.Parallel()
	p := newPoster(t, Config{Resolver: hangingResolver{}, ConnectTimeout: 200 * time.Millisecond, Timeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := p.Post(ctx, "http://receiver.example/", nil, []byte("{}"), nil, 0)
	var te *TimeoutError
	if err == nil || errors.As(err, &te) {
		t.Fatalf("err = %v, want the connect failure", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("the post took %s: the connect timeout was stretched to the context's deadline", took)
	}
}
