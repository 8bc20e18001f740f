package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Poster sends POSTs of small bodies (webhooks) to many hosts at once for
// little memory. The caller's goroutine does the whole exchange (net/http
// runs a reader and a writer goroutine per connection, each with its
// stack). While a receiver takes its time to answer, the exchange holds
// its connection and a 512-byte buffer: the buffer that reads the answer's
// headers is taken from a pool when the answer's first bytes arrive and
// goes back when it has been read. An idle connection is a socket and a
// few words; one sweeper goroutine closes those idle too long. Requests
// are written and answers parsed by fasthttp.
//
// It keeps every rule of [NewClient]: only addresses the policy allows are
// dialled (checked on the address dialled, after the cached DNS answer), no
// redirect is followed, no proxy, and cfg's timeouts bound each exchange.
// TLS sessions are resumed per host. It speaks HTTP/1.1. A send whose
// context is cancelled ends at once.
//
// An idle keep-alive connection is checked before it is used again: one
// its receiver closed while it was idle (a server's idle timeout can be
// shorter than Poster's), or sent something on (a 408 before closing), is
// closed and another taken or dialled, so that a request is never written
// to a connection already gone nor answered by a stale answer. A request
// is written once: none is sent again on another connection.
type Poster struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	tlsConfig   *tls.Config
	timeout     time.Duration
	handshake   time.Duration
	idleTimeout time.Duration
	readers     sync.Pool    // *bufio.Reader, bounding the answer's headers
	readersMade atomic.Int64 // the pool's misses (tests: a waiting exchange takes none)

	mu       sync.Mutex
	hosts    map[hostKey]*hostConns
	sweeping bool // a sweeper goroutine runs
}

// hostKey names the connections of one host, port and scheme.
type hostKey struct {
	addr string // host:port
	tls  bool
}

// hostConns are a host's connections.
type hostConns struct {
	tls   *tls.Config   // with the host's server name; nil for http
	slots chan struct{} // one per open connection (idle or in use)
	idle  []idleConn    // the most recently used last
	users int           // exchanges holding the host
}

type idleConn struct {
	conn  net.Conn
	since time.Time
}

// NewPoster returns a Poster applying cfg (see [Config]; MaxIdleConns does
// not apply: idle connections hold no goroutine and no buffer, and close
// after IdleConnTimeout).
func NewPoster(cfg Config) (*Poster, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d, tlsConfig, err := cfg.dialer()
	if err != nil {
		return nil, err
	}
	p := &Poster{
		dial:        d.DialContext,
		tlsConfig:   tlsConfig,
		timeout:     cfg.Timeout,
		handshake:   cfg.TLSHandshakeTimeout,
		idleTimeout: cfg.IdleConnTimeout,
		hosts:       make(map[hostKey]*hostConns),
	}
	// The read buffer bounds the answer's headers: 8 KiB, as most web
	// servers' own limit.
	size := int(min(cfg.MaxResponseHeaderBytes, 8<<10))
	p.readers.New = func() any {
		p.readersMade.Add(1)
		return bufio.NewReaderSize(nil, size)
	}
	return p, nil
}

// maxConnsPerHost bounds the connections to one host; the dispatcher's
// per-destination bound is far below it.
const maxConnsPerHost = 1024

// firstReadSize is the buffer an exchange holds while it waits for the
// answer: most answers to a webhook (a status line and a few headers) fit.
const firstReadSize = 512

// Answer is what a receiver answered a POST.
type Answer struct {
	// Status is the HTTP status.
	Status int
	// RetryAfter is the answer's Retry-After header, if any.
	RetryAfter string
	// Head holds the first bytes of the body of an answer that is not a
	// 2xx (for an error message); Truncated says the body went on.
	Head      []byte
	Truncated bool
}

// Header is one request header.
type Header struct{ Name, Value string }

// Post sends body to url with headers, and returns the answer; for a
// non-2xx answer, Head holds up to len(head) bytes of its body, read into
// head. The exchange ends by the earlier of ctx's deadline and the
// configured timeout, or when ctx is cancelled; a ctx already done returns
// its error. The rest of an answer's body is read (up to limit bytes in
// all) so that the connection is kept, else the connection is closed.
func (p *Poster) Post(ctx context.Context, url string, headers []Header, body, head []byte, limit int64) (Answer, error) {
	if err := ctx.Err(); err != nil {
		return Answer{}, err
	}
	deadline := time.Now().Add(p.timeout)
	ctxBound := false // ctx's deadline comes first
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxBound = d, true
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(url)
	req.URI().DisablePathNormalizing = true
	for _, h := range headers {
		req.Header.Set(h.Name, h.Value)
	}
	req.SetBodyRaw(body)
	key, err := keyOf(req.URI())
	if err != nil {
		return Answer{}, err
	}
	h := p.enter(key)
	defer p.leave(h)
	conn, err := p.acquire(ctx, h, key, deadline)
	if err != nil {
		return Answer{}, p.exchangeError(ctx, ctxBound, deadline, err)
	}
	a, keep, answered, err := p.exchange(ctx, conn, req, deadline, head, limit)
	p.release(h, conn, keep)
	if err != nil {
		if !answered && closedByPeer(err) {
			err = fmt.Errorf("the receiver closed the connection without answering: %w", err)
		}
		return Answer{}, p.exchangeError(ctx, ctxBound, deadline, err)
	}
	return a, nil
}

// keyOf returns the connection key of u: its host with the port, and
// whether it is https.
func keyOf(u *fasthttp.URI) (hostKey, error) {
	var isTLS bool
	switch string(u.Scheme()) {
	case "http":
	case "https":
		isTLS = true
	default:
		return hostKey{}, fmt.Errorf("%w: the scheme is not http or https", ErrInvalidURL)
	}
	if len(u.Host()) == 0 {
		return hostKey{}, fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	return hostKey{addr: fasthttp.AddMissingPort(string(u.Host()), isTLS), tls: isTLS}, nil
}

// closedByPeer reports whether err says the receiver closed the
// connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// enter returns the connections of key's host, counting one more exchange
// holding them (so that the sweeper keeps them).
func (p *Poster) enter(key hostKey) *hostConns {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[key]
	if h == nil {
		h = &hostConns{slots: make(chan struct{}, maxConnsPerHost)}
		if key.tls {
			h.tls = p.tlsConfig.Clone()
			if h.tls.ServerName == "" {
				name, _, _ := net.SplitHostPort(key.addr)
				h.tls.ServerName = name
			}
		}
		p.hosts[key] = h
		if !p.sweeping {
			p.sweeping = true
			go p.sweep()
		}
	}
	h.users++
	return h
}

// leave ends an exchange's hold on h.
func (p *Poster) leave(h *hostConns) {
	p.mu.Lock()
	h.users--
	p.mu.Unlock()
}

// acquire returns an idle connection to h that is still open and quiet
// (see idleConnAlive), or a new one.
func (p *Poster) acquire(ctx context.Context, h *hostConns, key hostKey, deadline time.Time) (net.Conn, error) {
	for {
		conn, since := p.popIdle(h)
		if conn == nil {
			break
		}
		if time.Since(since) < p.idleTimeout && idleConnAlive(conn) {
			return conn, nil
		}
		_ = conn.Close()
		<-h.slots
	}
	select {
	case h.slots <- struct{}{}:
	default:
		return nil, errNoFreeConns
	}
	conn, err := p.connect(ctx, h, key, deadline)
	if err != nil {
		<-h.slots
		return nil, err
	}
	return conn, nil
}

// popIdle takes h's most recently used idle connection, if any, and when
// it went idle.
func (p *Poster) popIdle(h *hostConns) (net.Conn, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(h.idle)
	if n == 0 {
		return nil, time.Time{}
	}
	ic := h.idle[n-1]
	h.idle[n-1] = idleConn{}
	h.idle = h.idle[:n-1]
	return ic.conn, ic.since
}

// errNoFreeConns is returned when a host has maxConnsPerHost connections
// in use.
var errNoFreeConns = fmt.Errorf("%d connections to the host in use", maxConnsPerHost)

// connect dials key (and shakes hands over TLS for https) on a goroutine
// of its own: its deep stack is not left to grow the stack of every
// exchange that once dialled.
func (p *Poster) connect(ctx context.Context, h *hostConns, key hostKey, deadline time.Time) (net.Conn, error) {
	type dialled struct {
		conn net.Conn
		err  error
	}
	done := make(chan dialled, 1)
	go func() {
		ctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		conn, err := p.dial(ctx, "tcp", key.addr)
		if err == nil && h.tls != nil {
			hctx, hcancel := context.WithTimeout(ctx, p.handshake)
			tc := tls.Client(conn, h.tls)
			if err = tc.HandshakeContext(hctx); err != nil {
				_ = conn.Close()
				conn = nil
			} else {
				conn = tc
			}
			hcancel()
		}
		done <- dialled{conn, err}
	}()
	d := <-done
	return d.conn, d.err
}

// release gives conn back: kept idle when keep is set, else closed.
func (p *Poster) release(h *hostConns, conn net.Conn, keep bool) {
	if keep {
		p.mu.Lock()
		h.idle = append(h.idle, idleConn{conn: conn, since: time.Now()})
		p.mu.Unlock()
		return
	}
	_ = conn.Close()
	<-h.slots
}

// sweep closes connections idle for longer than the idle timeout, and
// forgets hosts left with no connection, until no host is left.
func (p *Poster) sweep() {
	every := min(max(p.idleTimeout/2, 10*time.Millisecond), 5*time.Second)
	t := time.NewTimer(every)
	defer t.Stop()
	for range t.C {
		if !p.closeIdle(time.Now().Add(-p.idleTimeout), true) {
			return
		}
		t.Reset(every)
	}
}

// closeIdle closes the idle connections unused since before, forgets the
// hosts left without connections nor exchanges, and reports whether any
// host is left; called by the sweeper, it marks the sweeper stopped when
// none is.
func (p *Poster) closeIdle(before time.Time, sweeper bool) (hostsLeft bool) {
	type closing struct {
		h    *hostConns
		conn net.Conn
	}
	var closed []closing
	p.mu.Lock()
	for key, h := range p.hosts {
		kept := h.idle[:0]
		for _, ic := range h.idle {
			if ic.since.Before(before) {
				closed = append(closed, closing{h, ic.conn})
			} else {
				kept = append(kept, ic)
			}
		}
		clear(h.idle[len(kept):])
		h.idle = kept
		if len(h.idle) == 0 && h.users == 0 {
			// Its slots are those of the connections closed below: no
			// exchange holds the host, so none is in use.
			delete(p.hosts, key)
		}
	}
	hostsLeft = len(p.hosts) > 0
	if sweeper && !hostsLeft {
		p.sweeping = false
	}
	p.mu.Unlock()
	for _, c := range closed {
		_ = c.conn.Close()
		<-c.h.slots
	}
	return hostsLeft
}

// CloseIdleConnections closes the connections kept for reuse.
func (p *Poster) CloseIdleConnections() { p.closeIdle(time.Now().Add(time.Hour), false) }

// firstRead is the small buffer an exchange waits for its answer with; it
// then serves those bytes, and the connection after them, to the header
// reader.
type firstRead struct {
	conn   net.Conn
	buf    [firstReadSize]byte
	n, off int
}

var firstReads = sync.Pool{New: func() any { return new(firstRead) }}

// Read serves the bytes read first, then the connection's.
func (f *firstRead) Read(b []byte) (int, error) {
	if f.off < f.n {
		n := copy(b, f.buf[f.off:f.n])
		f.off += n
		return n, nil
	}
	return f.conn.Read(b)
}

// writers are the buffers requests are written through.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// exchange writes req on conn and reads the answer (see [Poster.Post]).
// keep reports that conn can carry another exchange; answered, that the
// receiver began to answer.
func (p *Poster) exchange(ctx context.Context, conn net.Conn, req *fasthttp.Request, deadline time.Time, head []byte, limit int64) (a Answer, keep, answered bool, err error) {
	if err := conn.SetDeadline(deadline); err != nil {
		return Answer{}, false, false, err
	}
	// A cancelled ctx (serve stopping) ends the exchange at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() {
			keep = false // the deadline is in the past
		}
	}()

	bw := writers.Get().(*bufio.Writer)
	bw.Reset(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	if err != nil {
		return Answer{}, false, false, err
	}

	f := firstReads.Get().(*firstRead)
	defer func() {
		*f = firstRead{}
		firstReads.Put(f)
	}()
	f.conn = conn
	if f.n, err = conn.Read(f.buf[:]); f.n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return Answer{}, false, false, err
	}
	br := p.readers.Get().(*bufio.Reader)
	br.Reset(f)
	defer func() {
		br.Reset(nil)
		p.readers.Put(br)
	}()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.StreamBody = true
	if err := resp.ReadLimitBody(br, 0); err != nil {
		return Answer{}, false, true, err
	}
	a.Status = resp.StatusCode()
	if v := resp.Header.Peek("Retry-After"); len(v) > 0 {
		a.RetryAfter = string(v)
	}
	ok := a.Status >= 200 && a.Status < 300
	complete := true
	if s := resp.BodyStream(); s != nil {
		var n int
		if head = head[:min(int64(len(head)), max(limit, 0))]; !ok && len(head) > 0 {
			n, _ = io.ReadFull(s, head)
			a.Head = head[:n]
		}
		// Drain what is left, up to limit, so that the connection is
		// reused; beyond it, the connection is closed.
		left := max(limit-int64(n), 0)
		rest, err := io.CopyN(io.Discard, s, left+1)
		a.Truncated = !ok && rest > 0
		complete = errors.Is(err, io.EOF) && rest <= left
		_ = resp.CloseBodyStream()
	}
	// fasthttp marks an answer whose body ends with the connection
	// (neither chunked nor of a known length) as closing it.
	keep = complete && !resp.ConnectionClose() && br.Buffered() == 0 && f.off == f.n
	return a, keep, true, nil
}

// exchangeError turns an exchange's error into the package's: the
// exchange running out of its time is a [TimeoutError] (a net.Error whose
// Timeout is true), and once ctx is done, ctx's error (wrapping the
// exchange's); a timeout of its own (connect, handshake) is left as it is.
func (p *Poster) exchangeError(ctx context.Context, ctxBound bool, deadline time.Time, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(deadline) {
		if ctxBound && ctx.Err() == nil {
			// The exchange ran out of ctx's time: report it once ctx is
			// done too (its timer may fire a moment after the
			// connection's).
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(deadline) + 100*time.Millisecond):
			}
		}
		if ctx.Err() == nil {
			return &TimeoutError{Limit: p.timeout, Err: err}
		}
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}
