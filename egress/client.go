package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// Resolver looks host names up. [*net.Resolver] implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures the client [NewClient] builds.
type Config struct {
	// ConnectTimeout bounds name resolution and TCP connect, together.
	// Defaults to 5 s.
	ConnectTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake. Defaults to 5 s.
	TLSHandshakeTimeout time.Duration
	// Timeout bounds a whole exchange, from dial to the end of the
	// response body. Defaults to 15 s.
	Timeout time.Duration
	// IdleConnTimeout is how long an idle keep-alive connection stays in
	// the pool before it is closed. Defaults to 30 s: long enough to carry
	// a fan-out's sends to a host from one to the next, short enough that
	// the connections of a burst (each holds two goroutines and their
	// buffers) do not outlive it for long.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds the idle connections kept per host (a
	// connection beyond it is closed when its exchange ends), so that the
	// sends in flight to one receiver reuse their connections. Set it to
	// at least the sends a host may have in flight. Defaults to 16.
	MaxIdleConnsPerHost int
	// MaxIdleConns bounds the idle connections kept in all hosts (each
	// holds two goroutines and 4 KiB of buffers: about 20 KiB). Defaults
	// to 512.
	MaxIdleConns int
	// TLSSessionCacheSize bounds the TLS sessions kept, one per host, so
	// that a new connection to a host resumes its session (an abbreviated
	// handshake: no certificate chain sent and verified again); the least
	// recently used goes first. Ignored when TLSConfig brings its own
	// ClientSessionCache. Defaults to 1024; negative disables resumption.
	TLSSessionCacheSize int
	// MaxResponseHeaderBytes bounds the size of response headers.
	// Defaults to 64 KiB.
	MaxResponseHeaderBytes int64
	// Allow lists prefixes reachable despite the SSRF guard (see
	// [Policy]). Defaults to none.
	Allow []netip.Prefix
	// Resolver looks host names up. Defaults to a [CachingResolver]
	// configured by DNS. Whatever it answers, the dialled address is
	// checked.
	Resolver Resolver
	// DNS configures the default resolver (see [DNSConfig] for its
	// defaults); ignored when Resolver is set.
	DNS DNSConfig
	// TLSConfig is the TLS client configuration (e.g. extra root CAs).
	// Defaults to the system roots with TLS 1.2 as the minimum version.
	TLSConfig *tls.Config
}

// WithDefaults returns a copy of c with the zero fields set to their
// defaults. The default resolver is built by [NewClient].
func (c Config) WithDefaults() Config {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.TLSHandshakeTimeout == 0 {
		c.TLSHandshakeTimeout = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if c.IdleConnTimeout == 0 {
		c.IdleConnTimeout = 30 * time.Second
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = 16
	}
	if c.TLSSessionCacheSize == 0 {
		c.TLSSessionCacheSize = 1024
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = 512
	}
	if c.MaxResponseHeaderBytes == 0 {
		c.MaxResponseHeaderBytes = 64 << 10
	}
	if c.TLSConfig == nil {
		c.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.ConnectTimeout < 0, c.TLSHandshakeTimeout < 0, c.Timeout < 0, c.IdleConnTimeout < 0:
		return errors.New("egress: timeouts must not be negative")
	case c.MaxIdleConnsPerHost < 0, c.MaxIdleConns < 0, c.MaxResponseHeaderBytes < 0:
		return errors.New("egress: connection and size limits must not be negative")
	}
	for _, p := range c.Allow {
		if !p.IsValid() {
			return errors.New("egress: invalid prefix in allow-list")
		}
	}
	return nil
}

// dialer returns the guarded dialer of cfg (defaults applied) and its TLS
// configuration, with a session cache keyed by server name (the URL's
// host, not the address dialled).
func (cfg Config) dialer() (*dialer, *tls.Config, error) {
	resolver := cfg.Resolver
	if resolver == nil {
		r, err := NewResolver(cfg.DNS)
		if err != nil {
			return nil, nil, err
		}
		resolver = r
	}
	d := &dialer{
		policy:   Policy{Allow: append([]netip.Prefix(nil), cfg.Allow...)},
		resolver: resolver,
		timeout:  cfg.ConnectTimeout,
	}
	d.net = net.Dialer{KeepAlive: 30 * time.Second, ControlContext: d.control}
	tlsConfig := cfg.TLSConfig.Clone()
	if tlsConfig.ClientSessionCache == nil && cfg.TLSSessionCacheSize > 0 {
		tlsConfig.ClientSessionCache = tls.NewLRUClientSessionCache(cfg.TLSSessionCacheSize)
	}
	return d, tlsConfig, nil
}

// NewClient returns an HTTP client that only connects to addresses the
// policy allows (checked on the address dialled), never follows redirects,
// ignores proxy settings, refuses URLs with credentials and applies cfg's
// timeouts. Reuse one client for many requests: it keeps idle connections.
func NewClient(cfg Config) (*http.Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d, tlsConfig, err := cfg.dialer()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                  nil, // a proxy would connect past the check
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout,
		MaxIdleConns:           cfg.MaxIdleConns,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes,
		DisableCompression:     true, // Herald reads little of any answer
		// A webhook is a few KiB out and a status line in: 2 KiB buffers
		// (4 KiB by default) halve what each open connection holds.
		ReadBufferSize:  2 << 10,
		WriteBufferSize: 2 << 10,
	}
	// The whole-exchange timeout is the guard's, not http.Client.Timeout:
	// for a transport it does not know, net/http enforces Client.Timeout
	// with a goroutine and a timer per request.
	return &http.Client{
		Transport:     &guard{tr: tr, timeout: cfg.Timeout},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// guard refuses requests carrying credentials in their URL, before they
// reach the transport, and bounds each exchange, from dial to the end of
// the response body, by timeout (unless the request's context ends
// sooner).
type guard struct {
	tr      *http.Transport
	timeout time.Duration
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL != nil && req.URL.User != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%w: credentials in URLs are not allowed", ErrInvalidURL)
	}
	deadline := time.Now().Add(g.timeout)
	if d, ok := req.Context().Deadline(); g.timeout <= 0 || (ok && !deadline.Before(d)) {
		return g.tr.RoundTrip(req)
	}
	ctx, cancel := context.WithDeadline(req.Context(), deadline)
	resp, err := g.tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && !time.Now().Before(deadline) {
			err = &TimeoutError{Limit: g.timeout, Err: err}
		}
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel, timeout: g.timeout}
	return resp, nil
}

// cancelOnClose ends an exchange's timeout when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel  context.CancelFunc
	timeout time.Duration
}

func (b *cancelOnClose) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		err = &TimeoutError{Limit: b.timeout, Err: err}
	}
	return n, err
}

// TimeoutError reports an exchange that did not complete within the
// client's timeout. It is a net.Error whose Timeout is true.
type TimeoutError struct {
	// Limit is the client's timeout.
	Limit time.Duration
	// Err is the transport's error (context.DeadlineExceeded).
	Err error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("no complete answer within %s", e.Limit)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout reports true: the error is a timeout (net.Error).
func (e *TimeoutError) Timeout() bool { return true }

// Temporary reports true (net.Error).
func (e *TimeoutError) Temporary() bool { return true }

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// CloseIdleConnections closes the pool's idle connections.
func (g *guard) CloseIdleConnections() { g.tr.CloseIdleConnections() }

// dialer resolves once, skips refused addresses and dials the others as IP
// literals; control re-checks the socket's remote address before connect.
type dialer struct {
	policy   Policy
	resolver Resolver
	timeout  time.Duration
	net      net.Dialer
}

// minPerAddress is the least time given to each address when several share
// the connect timeout (as net.Dialer does).
const minPerAddress = 2 * time.Second

func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, &net.AddrError{Err: "invalid port", Addr: address}
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if err := d.policy.checkHost(host); err != nil {
			return nil, err
		}
		ipNet := "ip"
		switch network {
		case "tcp4":
			ipNet = "ip4"
		case "tcp6":
			ipNet = "ip6"
		}
		if addrs, err = d.resolver.LookupNetIP(ctx, ipNet, host); err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
	}

	var blocked, dialErr error
	allowed := addrs[:0:0]
	for _, a := range addrs {
		if err := d.policy.CheckAddr(a); err != nil {
			if blocked == nil {
				blocked = err
			}
			continue
		}
		allowed = append(allowed, a)
	}
	for i, a := range allowed {
		actx := ctx
		if left := len(allowed) - i; left > 1 {
			if deadline, ok := ctx.Deadline(); ok {
				per := max(time.Until(deadline)/time.Duration(left), minPerAddress)
				var acancel context.CancelFunc
				actx, acancel = context.WithTimeout(ctx, per)
				defer acancel()
			}
		}
		conn, err := d.net.DialContext(actx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		if dialErr == nil {
			dialErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if dialErr != nil {
		return nil, dialErr
	}
	return nil, blocked
}

// control runs on the socket just before connect, with the address
// actually connected to.
func (d *dialer) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &BlockedError{Reason: "unparsable dial address"}
	}
	return d.policy.CheckAddr(ap.Addr())
}
