package mailpittest

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels/channelstest"
)

// Module is the Mailpit release the tests run against, as "go install"
// takes it.
const Module = "github.com/axllent/mailpit@v1.27.11"

// RequireEnv names the environment variable that turns a missing Mailpit
// into a test failure instead of a skip.
const RequireEnv = "HERALD_REQUIRE_MAILPIT"

// startTimeout bounds how long a starting Mailpit may take to answer on
// both ports: a liveness bound, not a performance threshold.
const startTimeout = 30 * time.Second

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of the Mailpit binary: found on PATH, in GOBIN
// or in GOPATH/bin, or else installed there with "go install [Module]".
// The search (and install) happens once per process.
func Binary() (string, error) {
	binOnce.Do(func() { binPath, binErr = findOrInstall() })
	return binPath, binErr
}

func findOrInstall() (string, error) {
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p, nil
	}
	if p := lookInGo(); p != "" {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", Module)
	cmd.Dir = os.TempDir() // outside any module: go.mod does not apply
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %w: %s", Module, err, bytes.TrimSpace(out))
	}
	if p := lookInGo(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("go install %s succeeded but no mailpit binary was found in GOBIN or GOPATH/bin", Module)
}

// lookInGo returns the mailpit binary in GOBIN or a GOPATH's bin, or "".
func lookInGo() string {
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "mailpit")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Options are the settings of one Mailpit server. The zero value is a
// plain SMTP server that accepts every message without authentication.
type Options struct {
	// CertPEM and KeyPEM, when set, make the SMTP server speak TLS with
	// this certificate: STARTTLS, required before MAIL FROM, or, with
	// Implicit, TLS from the first byte.
	CertPEM, KeyPEM []byte
	Implicit        bool
	// Username and Password, when set, make the SMTP server require AUTH
	// with them.
	Username, Password string
}

// Server is a running Mailpit.
type Server struct {
	// Host is the address both ports listen on: 127.0.0.1.
	Host string
	// SMTPPort is the SMTP port.
	SMTPPort int
	// API is the base URL of the web interface and REST API
	// ("http://127.0.0.1:PORT").
	API string

	client *http.Client
	stop   func()
}

// Start starts Mailpit on free loopback ports and stops it when tb ends.
// It skips tb when Mailpit is not installed and cannot be installed, unless
// [RequireEnv] is set: then tb fails.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(RequireEnv) != "" {
			tb.Fatalf("Mailpit is required (%s is set) but could not be had: %v", RequireEnv, err)
		}
		tb.Skipf("skipped: Mailpit is not installed and could not be installed (%v); set %s=1 to make this a failure", err, RequireEnv)
	}
	if (len(o.CertPEM) == 0) != (len(o.KeyPEM) == 0) {
		tb.Fatal("mailpittest: CertPEM and KeyPEM go together")
	}
	if o.Implicit && len(o.CertPEM) == 0 {
		tb.Fatal("mailpittest: Implicit needs CertPEM and KeyPEM")
	}
	dir := tb.TempDir()
	// A free port found here may be taken before Mailpit binds it; such a
	// start fails at once and is tried again on other ports.
	var lastErr error
	for range 3 {
		s, err := start(tb, bin, dir, o)
		if err == nil {
			return s
		}
		lastErr = err
	}
	tb.Fatalf("starting Mailpit: %v", lastErr)
	return nil
}

// start makes one attempt at starting Mailpit.
func start(tb testing.TB, bin, dir string, o Options) (*Server, error) {
	smtpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Host:     "127.0.0.1",
		SMTPPort: smtpPort,
		API:      "http://127.0.0.1:" + strconv.Itoa(httpPort),
		client:   &http.Client{Timeout: time.Minute},
	}
	db := filepath.Join(dir, "mailpit-"+strconv.Itoa(smtpPort)+".db")
	args := []string{
		"--smtp", net.JoinHostPort(s.Host, strconv.Itoa(smtpPort)),
		"--listen", net.JoinHostPort(s.Host, strconv.Itoa(httpPort)),
		"--database", db,
		"--max", "0", // keep every message
		"--disable-version-check",
		"--smtp-disable-rdns",
		"--quiet",
	}
	if len(o.CertPEM) > 0 {
		cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if err := os.WriteFile(cert, o.CertPEM, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(key, o.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--smtp-tls-cert", cert, "--smtp-tls-key", key)
		if o.Implicit {
			args = append(args, "--smtp-require-tls")
		} else {
			args = append(args, "--smtp-require-starttls")
		}
	}
	if o.Username != "" {
		sum := sha1.Sum([]byte(o.Password))
		file := filepath.Join(dir, "smtp-auth")
		line := o.Username + ":{SHA}" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"
		if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--smtp-auth-file", file)
	}
	out := &channelstest.SyncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
			s.client.CloseIdleConnections()
		})
	}
	deadline := time.Now().Add(startTimeout)
	for {
		if s.ready() {
			tb.Cleanup(s.stop)
			return s, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("mailpit exited: %s", strings.TrimSpace(out.String()))
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("mailpit did not answer within %v: %s", startTimeout, strings.TrimSpace(out.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports whether the API says ready and the SMTP port accepts.
func (s *Server) ready() bool {
	resp, err := s.client.Get(s.API + "/readyz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	c, err := net.DialTimeout("tcp", s.SMTPAddr(), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// SMTPAddr is the SMTP server's "host:port".
func (s *Server) SMTPAddr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.SMTPPort)) }

// Stop stops Mailpit now; it is also stopped when the test ends. Stopping
// twice is harmless.
func (s *Server) Stop() { s.stop() }

// Address is a mailbox as Mailpit reports it.
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Message is a stored message as Mailpit's API returns it
// (GET /api/v1/message/{ID}): headers decoded, both parts decoded to UTF-8.
type Message struct {
	ID        string    `json:"ID"`
	MessageID string    `json:"MessageID"` // without angle brackets
	From      Address   `json:"From"`
	To        []Address `json:"To"`
	Cc        []Address `json:"Cc"`
	ReplyTo   []Address `json:"ReplyTo"`
	Subject   string    `json:"Subject"`
	Date      time.Time `json:"Date"`
	// Username is the SMTP AUTH user that submitted the message.
	Username string `json:"Username"`
	// Text and HTML are the decoded text/plain and text/html parts.
	Text string `json:"Text"`
	HTML string `json:"HTML"`
	// ListUnsubscribe is Mailpit's reading of List-Unsubscribe and
	// List-Unsubscribe-Post.
	ListUnsubscribe ListUnsubscribe `json:"ListUnsubscribe"`
	Size            int             `json:"Size"`
}

// ListUnsubscribe is how Mailpit parsed the unsubscribe headers: the raw
// header, the links in it, the List-Unsubscribe-Post value, and what it
// found wrong (empty when nothing).
type ListUnsubscribe struct {
	Header     string   `json:"Header"`
	Links      []string `json:"Links"`
	Errors     string   `json:"Errors"`
	HeaderPost string   `json:"HeaderPost"`
}

// Summary is one entry of a message list or search.
type Summary struct {
	ID        string    `json:"ID"`
	MessageID string    `json:"MessageID"`
	From      Address   `json:"From"`
	To        []Address `json:"To"`
	Subject   string    `json:"Subject"`
	Created   time.Time `json:"Created"`
}

// list is a page of messages.
type list struct {
	Total         int       `json:"total"`
	MessagesCount int       `json:"messages_count"`
	Messages      []Summary `json:"messages"`
}

// Header holds a message's headers as Mailpit returns them, by name.
type Header map[string][]string

// Values returns the values of the header name, whatever the case of
// the name.
func (h Header) Values(name string) []string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// Get returns the only value of the header name, and false when the header
// is absent or repeated.
func (h Header) Get(name string) (string, bool) {
	v := h.Values(name)
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// Fetch sends a GET to path (below API) and decodes the JSON answer into v;
// v of type *[]byte receives the body as it is. It fails tb on any error or
// a status other than 200.
func (s *Server) Fetch(tb testing.TB, path string, v any) {
	tb.Helper()
	if err := s.do(http.MethodGet, path, v); err != nil {
		tb.Fatal(err)
	}
}

func (s *Server) do(method, path string, v any) error {
	req, err := http.NewRequest(method, s.API+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit %s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("mailpit %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(body))
	}
	switch p := v.(type) {
	case nil:
		return nil
	case *[]byte:
		*p = body
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("mailpit %s %s: %w: %s", method, path, err, body)
	}
	return nil
}

// Message returns the stored message id (a Mailpit id, as in [Summary]
// and in the queue id of Mailpit's SMTP answer).
func (s *Server) Message(tb testing.TB, id string) Message {
	tb.Helper()
	var m Message
	s.Fetch(tb, "/api/v1/message/"+url.PathEscape(id), &m)
	return m
}

// Headers returns the headers of the stored message id.
func (s *Server) Headers(tb testing.TB, id string) Header {
	tb.Helper()
	var h Header
	s.Fetch(tb, "/api/v1/message/"+url.PathEscape(id)+"/headers", &h)
	return h
}

// Raw returns the stored message id as it was received.
func (s *Server) Raw(tb testing.TB, id string) []byte {
	tb.Helper()
	var raw []byte
	s.Fetch(tb, "/api/v1/message/"+url.PathEscape(id)+"/raw", &raw)
	return raw
}

// pageSize is how many summaries one list or search request asks for.
const pageSize = 500

// Messages returns every stored message, newest first.
func (s *Server) Messages(tb testing.TB) []Summary {
	tb.Helper()
	return s.pages(tb, "/api/v1/messages?")
}

// Search returns the messages matching a Mailpit search query
// ("to:ops@dupont.example", "subject:\"Oney\""), newest first.
func (s *Server) Search(tb testing.TB, query string) []Summary {
	tb.Helper()
	return s.pages(tb, "/api/v1/search?query="+url.QueryEscape(query)+"&")
}

func (s *Server) pages(tb testing.TB, prefix string) []Summary {
	tb.Helper()
	var out []Summary
	for {
		var page list
		s.Fetch(tb, prefix+"limit="+strconv.Itoa(pageSize)+"&start="+strconv.Itoa(len(out)), &page)
		out = append(out, page.Messages...)
		if len(page.Messages) < pageSize {
			return out
		}
	}
}

// Total returns how many messages Mailpit holds.
func (s *Server) Total(tb testing.TB) int {
	tb.Helper()
	n, err := s.Count()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// Count returns how many messages Mailpit holds; unlike [Server.Total] it
// reports errors instead of failing the test, for use off the test's
// goroutine.
func (s *Server) Count() (int, error) {
	var page list
	if err := s.do(http.MethodGet, "/api/v1/messages?limit=1", &page); err != nil {
		return 0, err
	}
	return page.Total, nil
}

// DeleteAll deletes every stored message.
func (s *Server) DeleteAll(tb testing.TB) {
	tb.Helper()
	if err := s.do(http.MethodDelete, "/api/v1/messages", nil); err != nil {
		tb.Fatal(err)
	}
}

// WaitTotal waits until Mailpit holds at least n messages and returns how
// many it holds; it fails tb when that takes longer than timeout (a
// liveness bound).
func (s *Server) WaitTotal(tb testing.TB, n int, timeout time.Duration) int {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := s.Count()
		if err != nil {
			tb.Fatal(err)
		}
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			tb.Fatalf("Mailpit holds %d messages after %v, want %d", got, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
