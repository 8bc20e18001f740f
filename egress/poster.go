package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Poster sends POSTs of small bodies (webhooks) to many hosts at once for
// little memory: the caller's goroutine does the whole exchange (net/http
// runs a reader and a writer goroutine per connection, each with its
// stack), buffers come from pools and go back after each exchange, and an
// idle connection is a socket and a few words. A thousand exchanges in
// flight hold about 10 MiB (net/http: about 30 MiB).
//
// It keeps every rule of [NewClient]: only addresses the policy allows are
// dialled (checked on the address dialled, after the cached DNS answer), no
// redirect is followed, no proxy, and cfg's timeouts bound each exchange.
// TLS sessions are resumed per host. It speaks HTTP/1.1.
type Poster struct {
	client  *fasthttp.Client
	timeout time.Duration
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
	client := &fasthttp.Client{
		NoDefaultUserAgentHeader: true,
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), min(timeout, cfg.ConnectTimeout))
			defer cancel()
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSConfig:           tlsConfig,
		MaxConnsPerHost:     maxConnsPerHost,
		MaxConnWaitTimeout:  cfg.Timeout,
		MaxIdleConnDuration: cfg.IdleConnTimeout,
		// The read buffer, held while an exchange lasts, bounds the
		// answer's headers: 8 KiB, as most web servers' own limit.
		ReadBufferSize:  int(min(cfg.MaxResponseHeaderBytes, 8<<10)),
		WriteBufferSize: 4 << 10,
		// Answers are streamed: a receiver's large body is never held.
		StreamResponseBody: true,
		// A POST is not retried here: the dispatcher decides.
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DisablePathNormalizing:    true,
		// Error texts never quote the answer: a malformed one may echo
		// the request's target, whose path and query can hold a token.
		ConfigureClient: func(hc *fasthttp.HostClient) error {
			hc.SecureErrorLogMessage = true
			return nil
		},
	}
	return &Poster{client: client, timeout: cfg.Timeout}, nil
}

// maxConnsPerHost bounds the connections to one host; the dispatcher's
// per-destination bound is far below it.
const maxConnsPerHost = 1024

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
// configured timeout; a ctx already done returns its error. The rest of an
// answer's body is read (up to limit bytes in all) so that the connection
// is kept, else the connection is closed.
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
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(url)
	for _, h := range headers {
		req.Header.Set(h.Name, h.Value)
	}
	req.SetBodyRaw(body)
	if err := p.client.DoDeadline(req, resp, deadline); err != nil {
		err = p.exchangeError(err)
		var te *TimeoutError
		if ctxBound && errors.As(err, &te) {
			// The exchange ran out of ctx's time: report it once ctx is
			// done too (its timer may fire a moment after fasthttp's),
			// with ctx's error, as a net/http exchange would.
			select {
			case <-ctx.Done():
				return Answer{}, fmt.Errorf("%w (%w)", ctx.Err(), err)
			case <-time.After(time.Until(deadline) + 100*time.Millisecond):
			}
		}
		return Answer{}, err
	}
	a := Answer{Status: resp.StatusCode()}
	if v := resp.Header.Peek("Retry-After"); len(v) > 0 {
		a.RetryAfter = string(v)
	}
	ok := a.Status >= 200 && a.Status < 300
	if s := resp.BodyStream(); s != nil {
		var n int
		if !ok && len(head) > 0 {
			n, _ = io.ReadFull(s, head)
			a.Head = head[:n]
		}
		// Drain what is left, up to limit, so that the connection is
		// reused; beyond it, closing the stream closes the connection.
		rest, _ := io.CopyN(io.Discard, s, max(limit-int64(n), 0)+1)
		a.Truncated = !ok && rest > 0
		_ = resp.CloseBodyStream()
	} else if !ok {
		b := resp.Body()
		n := copy(head, b)
		a.Head, a.Truncated = head[:n], len(b) > n
	}
	return a, nil
}

// exchangeError turns fasthttp's errors into the package's: a timeout is a
// [TimeoutError] (a net.Error whose Timeout is true).
func (p *Poster) exchangeError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, fasthttp.ErrNoFreeConns),
		errors.As(err, &ne) && ne.Timeout():
		return &TimeoutError{Limit: p.timeout, Err: err}
	}
	return err
}

// CloseIdleConnections closes the connections kept for reuse.
func (p *Poster) CloseIdleConnections() { p.client.CloseIdleConnections() }
