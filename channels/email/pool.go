package email

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/textproto"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// probeIdle is how long a kept connection may sit unused before Herald
// checks it with NOOP before its next message: a server may have closed
// it meanwhile, and a dead connection found before MAIL FROM costs a
// redial, not a failed send.
const probeIdle = 5 * time.Second

// quitTimeout bounds the QUIT sent when a connection is retired.
const quitTimeout = 2 * time.Second

// aLongTimeAgo is a deadline in the past: setting it makes every pending
// and future read and write on a connection fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// slot is one of the channel's Pool connections: a go-mail client (its
// configuration: server, TLS, credentials) and the connection it keeps
// open, if any. A slot is used by one Send at a time.
type slot struct {
	client *gomail.Client
	conn   *conn
}

// conn is an open SMTP connection.
type conn struct {
	guard *guardedConn
	smtp  *smtp.Client
	// used is when the connection last carried a message or was
	// opened (the channel's clock); sent counts its messages.
	used time.Time
	sent int
	// dirty is true when a transaction was refused midway: the next one
	// starts with RSET.
	dirty bool
}

// guardedConn is the TCP connection under an SMTP client. Once aborted (its
// Send's context ended) every deadline set on it is in the past, so the
// exchange stops at once and no later SetDeadline (go-mail sets its own)
// can revive it.
type guardedConn struct {
	net.Conn
	mu      sync.Mutex
	aborted bool
}

func (g *guardedConn) abort() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.aborted = true
	_ = g.Conn.SetDeadline(aLongTimeAgo)
}

func (g *guardedConn) isAborted() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.aborted
}

func (g *guardedConn) deadline(t time.Time) time.Time {
	if g.aborted {
		return aLongTimeAgo
	}
	return t
}

// SetDeadline sets the deadline, unless the connection was aborted.
func (g *guardedConn) SetDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetDeadline(g.deadline(t))
}

// SetReadDeadline sets the read deadline, unless the connection was
// aborted.
func (g *guardedConn) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetReadDeadline(g.deadline(t))
}

// SetWriteDeadline sets the write deadline, unless the connection was
// aborted.
func (g *guardedConn) SetWriteDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.SetWriteDeadline(g.deadline(t))
}

// dialHook carries, through go-mail's dial, the connection the dial
// function opened, so that the caller can abort it and close it.
type dialHook struct {
	mu      sync.Mutex
	conn    *guardedConn
	aborted bool
}

type dialHookKey struct{}

func (h *dialHook) set(g *guardedConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conn = g
	if h.aborted {
		g.abort()
	}
}

func (h *dialHook) abort() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.aborted = true
	if h.conn != nil {
		h.conn.abort()
	}
}

func (h *dialHook) get() *guardedConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conn
}

// newClient returns the go-mail client of one slot.
func (c *Channel) newClient() (*gomail.Client, error) {
	cfg := c.cfg
	opts := []gomail.Option{
		gomail.WithPort(cfg.Port),
		gomail.WithTimeout(cfg.DialTimeout),
		gomail.WithDialContextFunc(c.dialContext),
		gomail.WithTLSConfig(c.tlsConfig),
	}
	switch cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		// dialContext does the handshake; WithSSL tells go-mail the
		// connection is encrypted already.
		opts = append(opts, gomail.WithSSL())
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(cfg.HELO))
	}
	if cfg.Username != "" {
		opts = append(opts, gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password.Reveal()))
		switch cfg.Auth {
		case AuthPlain:
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain))
		case AuthLogin:
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthLogin))
		case AuthCRAMMD5:
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthCramMD5))
		default:
			// Not go-mail's auto-discovery: with implicit TLS and a dial
			// function of ours it believes the connection unencrypted and
			// leaves PLAIN and LOGIN out. PLAIN and LOGIN still refuse to
			// run without TLS.
			opts = append(opts, gomail.WithOpportunisticSMTPAuth(
				gomail.SMTPAuthSCRAMSHA256PLUS, gomail.SMTPAuthSCRAMSHA256,
				gomail.SMTPAuthSCRAMSHA1PLUS, gomail.SMTPAuthSCRAMSHA1,
				gomail.SMTPAuthCramMD5, gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
		}
	}
	return gomail.NewClient(cfg.Host, opts...)
}

// dialContext opens the TCP connection (and, for implicit TLS, does the
// handshake) for go-mail, and hands it to the dialHook in ctx.
func (c *Channel) dialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	g := &guardedConn{Conn: raw}
	if h, ok := ctx.Value(dialHookKey{}).(*dialHook); ok {
		h.set(g)
	}
	if c.cfg.TLS != TLSImplicit {
		return g, nil
	}
	tc := tls.Client(g, c.tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return tc, nil
}

// dial opens a connection for s: TCP, greeting, EHLO, STARTTLS, AUTH. It
// gives up when ctx ends.
func (c *Channel) dial(ctx context.Context, s *slot) (*conn, error) {
	h := &dialHook{}
	stop := context.AfterFunc(ctx, h.abort)
	defer stop()
	sc, err := s.client.DialToSMTPClientWithContext(context.WithValue(ctx, dialHookKey{}, h))
	if err != nil {
		// go-mail leaves the connection open when EHLO, STARTTLS or AUTH
		// fail.
		if g := h.get(); g != nil {
			_ = g.Conn.Close()
		}
		return nil, err
	}
	g := h.get()
	if g == nil { // cannot happen: dialContext always sets it
		_ = sc.Close()
		return nil, errors.New("no connection")
	}
	return &conn{guard: g, smtp: sc, used: c.cfg.Now()}, nil
}

// ready makes s's connection ready for a message: it retires a connection
// that idled too long or carried MaxPerConnection messages, checks one
// that idled a while (NOOP) or whose last transaction failed (RSET), and
// dials when none is left. It reports whether the connection was reused.
func (c *Channel) ready(ctx context.Context, s *slot) (bool, error) {
	if cn := s.conn; cn != nil {
		idle := c.cfg.Now().Sub(cn.used)
		switch {
		case idle >= c.cfg.IdleTimeout || cn.sent >= c.cfg.MaxPerConnection:
			c.retire(s)
		case cn.dirty || idle >= probeIdle:
			if err := c.check(ctx, cn); err != nil {
				c.discard(s)
			}
		}
	}
	if s.conn != nil {
		return true, nil
	}
	cn, err := c.dial(ctx, s)
	if err != nil {
		return false, err
	}
	s.conn = cn
	return false, nil
}

// check sends RSET (after a refused transaction) or NOOP on cn.
func (c *Channel) check(ctx context.Context, cn *conn) error {
	stop := context.AfterFunc(ctx, cn.guard.abort)
	defer stop()
	if err := cn.guard.SetDeadline(time.Now().Add(c.cfg.DialTimeout)); err != nil {
		return err
	}
	if cn.dirty {
		if err := cn.smtp.Reset(); err != nil {
			return err
		}
		cn.dirty = false
		return nil
	}
	return cn.smtp.Noop()
}

// transact runs one mail transaction on cn and returns the server's reply
// to the content (its text, without the code), or the error of the stage
// that failed. The connection is aborted when ctx ends.
func (c *Channel) transact(ctx context.Context, cn *conn, env envelope) (string, stage, error) {
	stop := context.AfterFunc(ctx, cn.guard.abort)
	defer stop()
	if err := cn.guard.SetDeadline(time.Now().Add(c.cfg.SendTimeout)); err != nil {
		return "", stageMail, err
	}
	cn.smtp.SkipSMTPUTF8(!env.utf8)
	cn.dirty = true
	if err := cn.smtp.Mail(env.from); err != nil {
		return "", stageMail, err
	}
	if err := cn.smtp.Rcpt(env.to); err != nil {
		return "", stageRcpt, err
	}
	w, err := cn.smtp.Data()
	if err != nil {
		return "", stageData, err
	}
	if _, err := w.Write(env.data); err != nil {
		_ = w.Close()
		return "", stageEnd, err
	}
	if err := w.Close(); err != nil {
		return "", stageEnd, err
	}
	cn.dirty = false
	cn.sent++
	if dc, ok := w.(*smtp.DataCloser); ok {
		return dc.ServerResponse(), stageEnd, nil
	}
	return "", stageEnd, nil
}

// after decides what becomes of s's connection once a transaction ended
// with err: kept for the next message, or closed when the exchange broke
// (a transport error, an aborted context, or 421: the server is closing).
func (c *Channel) after(s *slot, err error) {
	cn := s.conn
	if cn == nil {
		return
	}
	var te *textproto.Error
	switch {
	case cn.guard.isAborted():
		c.discard(s)
	case err == nil:
		cn.used = c.cfg.Now()
	case errors.As(err, &te) && te.Code != 421:
		cn.used = c.cfg.Now()
	default:
		c.discard(s)
	}
}

// retire closes s's connection politely (QUIT).
func (c *Channel) retire(s *slot) {
	if s.conn != nil {
		quit(s.conn)
		s.conn = nil
	}
}

// discard closes s's connection without a word: it is broken.
func (c *Channel) discard(s *slot) {
	if s.conn != nil {
		_ = s.conn.guard.Conn.Close()
		s.conn = nil
	}
}

// quit sends QUIT, briefly, and closes cn.
func quit(cn *conn) {
	_ = cn.guard.SetDeadline(time.Now().Add(quitTimeout))
	_ = cn.smtp.Quit()
	_ = cn.guard.Conn.Close()
}

// acquire waits for a free slot, or for ctx to end.
func (c *Channel) acquire(ctx context.Context) (*slot, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.sem
		return nil, errClosed
	}
	s := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	c.mu.Unlock()
	return s, nil
}

// release gives s back: on top of the free list, so that the most recently
// used connections serve first and the others age out.
func (c *Channel) release(s *slot) {
	var old *conn
	c.mu.Lock()
	if c.closed {
		old, s.conn = s.conn, nil
	}
	c.free = append(c.free, s)
	c.mu.Unlock()
	if old != nil {
		quit(old)
	}
	<-c.sem
}

// sweep retires the free connections idle for IdleTimeout or more, or
// all of them when all is true.
func (c *Channel) sweep(all bool) {
	now := c.cfg.Now()
	var old []*conn
	c.mu.Lock()
	for _, s := range c.free {
		if s.conn != nil && (all || now.Sub(s.conn.used) >= c.cfg.IdleTimeout) {
			old = append(old, s.conn)
			s.conn = nil
		}
	}
	c.mu.Unlock()
	for _, cn := range old {
		quit(cn)
	}
}

// janitor sweeps idle connections until the channel closes.
func (c *Channel) janitor() {
	defer c.wg.Done()
	t := time.NewTicker(max(c.cfg.IdleTimeout/2, time.Second))
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.sweep(false)
		}
	}
}
