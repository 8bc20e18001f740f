package email

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// behavior is how the test server answers one recipient.
type behavior struct {
	// stage is when it answers: stageMail (keyed by sender), stageRcpt
	// or stageEnd (the reply to the content).
	stage stage
	code  int
	// enhanced is the enhanced code; smtp.NoEnhancedCode for none.
	enhanced smtp.EnhancedCode
	text     string
	// hang makes it never answer (until the test ends); drop makes it
	// close the connection instead of answering.
	hang, drop bool
}

// received is a message the test server accepted.
type received struct {
	from, to, user string
	data           []byte
}

// testServer is an SMTP server on 127.0.0.1 (github.com/emersion/go-smtp)
// that answers chosen recipients with chosen replies, accepts the others,
// and counts sessions (connections) and transactions (MAIL FROM).
type testServer struct {
	addr     string
	host     string
	port     int
	sessions atomic.Int64 // connections accepted
	mails    atomic.Int64 // MAIL FROM commands
	release  chan struct{}

	mu       sync.Mutex
	behave   map[string]behavior
	fallback *behavior // for recipients without a behavior
	got      []received
	conns    []net.Conn
}

// serverOptions configure a test server.
type serverOptions struct {
	// tls offers STARTTLS (or, with implicit, speaks TLS from the
	// start) with a certificate for 127.0.0.1 signed by pool's CA.
	tls      *tls.Config
	implicit bool
	// user and pass, when set, require AUTH with one of mechs.
	user, pass string
	mechs      []string
}

func newTestServer(t testing.TB, o serverOptions) *testServer {
	t.Helper()
	ts := &testServer{behave: map[string]behavior{}, release: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &testSession{ts: ts, conn: c, o: o}, nil
	}))
	srv.Domain = "mx.test"
	srv.TLSConfig = o.tls
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = discardLogger{}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener = &countingListener{Listener: tcp, ts: ts}
	if o.implicit {
		ln = tls.NewListener(ln, o.tls)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(ts.release)
		_ = srv.Close()
	})
	ts.addr = ln.Addr().String()
	host, port, _ := net.SplitHostPort(ts.addr)
	ts.host = host
	ts.port, _ = strconv.Atoi(port)
	return ts
}

// countingListener counts and keeps the connections it accepts (a
// session starts afresh after STARTTLS: sessions are no count of
// connections).
type countingListener struct {
	net.Listener
	ts *testServer
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.ts.sessions.Add(1)
		l.ts.mu.Lock()
		l.ts.conns = append(l.ts.conns, c)
		l.ts.mu.Unlock()
	}
	return c, err
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

func (ts *testServer) set(addr string, b behavior) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.behave[addr] = b
}

func (ts *testServer) setFallback(b behavior) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.fallback = &b
}

func (ts *testServer) behavior(addr string, st stage) (behavior, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	b, ok := ts.behave[addr]
	if !ok && ts.fallback != nil {
		b, ok = *ts.fallback, true
	}
	return b, ok && b.stage == st
}

func (ts *testServer) messages() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.got...)
}

// killConnections closes every connection the server holds, as a server
// restarting or timing idle clients out does.
func (ts *testServer) killConnections() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, c := range ts.conns {
		_ = c.Close()
	}
	ts.conns = nil
}

type testSession struct {
	ts       *testServer
	conn     *smtp.Conn
	o        serverOptions
	user     string
	from, to string
}

func (s *testSession) act(b behavior) error {
	switch {
	case b.hang:
		<-s.ts.release
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 0, 0}, Message: "shutting down"}
	case b.drop:
		_ = s.conn.Conn().Close()
		return errors.New("dropped")
	}
	return &smtp.SMTPError{Code: b.code, EnhancedCode: b.enhanced, Message: b.text}
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	s.ts.mails.Add(1)
	if s.o.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	if b, ok := s.ts.behavior(from, stageMail); ok {
		return s.act(b)
	}
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = to
	if b, ok := s.ts.behavior(to, stageRcpt); ok {
		return s.act(b)
	}
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if b, ok := s.ts.behavior(s.to, stageEnd); ok {
		return s.act(b)
	}
	s.ts.mu.Lock()
	s.ts.got = append(s.ts.got, received{from: s.from, to: s.to, user: s.user, data: data})
	n := len(s.ts.got)
	s.ts.mu.Unlock()
	// A Postfix-like answer naming the queue id.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as Q" + strconv.Itoa(n)}
}

func (s *testSession) Reset()        { s.from, s.to = "", "" }
func (s *testSession) Logout() error { return nil }

func (s *testSession) AuthMechanisms() []string {
	if s.o.user == "" {
		return nil
	}
	return s.o.mechs
}

func (s *testSession) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != s.o.user || pass != s.o.pass {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case "LOGIN":
		return &loginServer{check: check}, nil
	case "CRAM-MD5":
		return &cramServer{secret: s.o.pass, user: s.o.user, done: func() { s.user = s.o.user }}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// loginServer is the server side of AUTH LOGIN.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if resp != nil { // initial response: the user name
			l.user = string(resp)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user = string(resp)
		l.step++
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}

// cramServer is the server side of AUTH CRAM-MD5 (RFC 2195).
type cramServer struct {
	secret, user, challenge string
	done                    func()
}

func (c *cramServer) Next(resp []byte) ([]byte, bool, error) {
	if c.challenge == "" {
		c.challenge = "<" + strconv.FormatInt(time.Now().UnixNano(), 10) + "@mx.test>"
		return []byte(c.challenge), false, nil
	}
	user, digest, ok := strings.Cut(string(resp), " ")
	mac := hmac.New(md5.New, []byte(c.secret))
	mac.Write([]byte(c.challenge))
	if !ok || user != c.user || digest != hex.EncodeToString(mac.Sum(nil)) {
		return nil, true, smtp.ErrAuthFailed
	}
	c.done()
	return nil, true, nil
}

// testCA is a certificate authority and a server certificate for
// 127.0.0.1 and localhost, made for one test run.
type testCA struct {
	server  tls.Certificate
	pool    *x509.CertPool
	certPEM []byte
	keyPEM  []byte
}

var (
	caOnce sync.Once
	ca     testCA
)

func testTLS(t testing.TB) testCA {
	t.Helper()
	caOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "Herald test SMTP server"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
			DNSNames:              []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			panic(err)
		}
		ca.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		ca.keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		ca.server, err = tls.X509KeyPair(ca.certPEM, ca.keyPEM)
		if err != nil {
			panic(err)
		}
		ca.pool = x509.NewCertPool()
		ca.pool.AppendCertsFromPEM(ca.certPEM)
	})
	return ca
}

func (c testCA) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.server}, MinVersion: tls.VersionTLS12}
}

func (c testCA) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.pool, MinVersion: tls.VersionTLS12}
}
