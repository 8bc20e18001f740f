package broker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/secret"
)

// Names of the files the embedded server keeps in the data directory.
const (
	lockFile    = "herald.lock"
	infoFile    = "embedded-nats.json"
	storeSubdir = "jetstream"
)

// Config says how to reach NATS.
type Config struct {
	// URL is a comma-separated list of NATS server URLs. Empty means an
	// embedded server with its store under DataDir.
	URL string
	// CredsFile is a NATS credentials file (JWT + nkey seed) for URL.
	CredsFile string
	// Token is a NATS authentication token for URL.
	Token secret.Value
	// User and Password authenticate to URL.
	User     string
	Password secret.Value
	// TLSCA, TLSCert and TLSKey are PEM files for TLS to URL: a CA to
	// trust, and a client certificate and key.
	TLSCA, TLSCert, TLSKey string
	// Name is the NATS connection name. Defaults to "herald".
	Name string

	// DataDir holds the embedded server's JetStream store and lock.
	// Defaults to "./herald-data".
	DataDir string
	// Listen is the loopback address the embedded server listens on, so
	// that CLI commands and tools reach it. Defaults to "127.0.0.1:4222";
	// "none" serves in-process connections only; a port of 0 picks a
	// free one.
	Listen string
	// SyncAlways fsyncs every JetStream write of the embedded server.
	// Defaults to false: writes reach the operating system before they
	// are acknowledged (a killed process loses nothing) but are fsynced
	// every SyncInterval, so a power loss can lose the last interval.
	SyncAlways bool
	// SyncInterval is the fsync period of the embedded server when
	// SyncAlways is false. Defaults to nats-server's 2 minutes.
	SyncInterval time.Duration
	// ConnectTimeout bounds connecting. Defaults to 10 s.
	ConnectTimeout time.Duration
	// Logger receives the embedded server's and the connection's logs.
	// Defaults to discarding them.
	Logger *slog.Logger
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Name == "" {
		c.Name = "herald"
	}
	if c.DataDir == "" {
		c.DataDir = "herald-data"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:4222"
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	if c.Listen != "none" {
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return fmt.Errorf("broker: listen %q: %w", c.Listen, err)
		}
		if _, err := strconv.Atoi(port); err != nil {
			return fmt.Errorf("broker: listen %q: bad port", c.Listen)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("broker: listen %q: the embedded server only listens on loopback; use an external NATS cluster to expose it", c.Listen)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("broker: a TLS client certificate needs both the certificate and the key")
	}
	if c.SyncInterval < 0 {
		return errors.New("broker: sync interval must not be negative")
	}
	return nil
}

// Broker is an open connection to JetStream, and the embedded server when
// this process runs it.
type Broker struct {
	// Conn is the NATS connection.
	Conn *nats.Conn
	// JS is the JetStream API on Conn.
	JS jetstream.JetStream

	srv    *server.Server
	unlock func()
	info   string
	logger *slog.Logger
}

// Embedded reports whether this process runs the embedded server.
func (b *Broker) Embedded() bool { return b.srv != nil }

// ClientURL returns the URL other processes use to reach the embedded server
// ("" when it does not listen or is not embedded).
func (b *Broker) ClientURL() string {
	if b.srv == nil || b.srv.Addr() == nil {
		return ""
	}
	return b.srv.ClientURL()
}

// embeddedInfo is what the data directory tells CLI commands about the
// running embedded server.
type embeddedInfo struct {
	URL   string `json:"url"`
	Token string `json:"token"`
	PID   int    `json:"pid"`
}

// Open connects as cfg says. With no URL it starts the embedded server on
// cfg.DataDir, or, when another process already runs it (the data
// directory is locked), connects to that one.
func Open(ctx context.Context, cfg Config) (*Broker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.URL != "" {
		return connectExternal(ctx, cfg)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: data dir: %w", err)
	}
	unlock, locked, err := tryLock(filepath.Join(cfg.DataDir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if !locked {
		return connectRunning(ctx, cfg)
	}
	b, err := startEmbedded(cfg, unlock)
	if err != nil {
		unlock()
		return nil, err
	}
	return b, nil
}

func startEmbedded(cfg Config, unlock func()) (*Broker, error) {
	opts := &server.Options{
		ServerName:   "herald",
		JetStream:    true,
		StoreDir:     filepath.Join(cfg.DataDir, storeSubdir),
		NoSigs:       true,
		MaxPayload:   8 << 20,
		SyncAlways:   cfg.SyncAlways,
		SyncInterval: cfg.SyncInterval,
		DontListen:   cfg.Listen == "none",
	}
	var token string
	if !opts.DontListen {
		host, port, _ := net.SplitHostPort(cfg.Listen)
		opts.Host = host
		opts.Port, _ = strconv.Atoi(port)
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return nil, fmt.Errorf("broker: token: %w", err)
		}
		token = hex.EncodeToString(buf)
		opts.Authorization = token
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: embedded server: %w", err)
	}
	srv.SetLoggerV2(&serverLogger{l: cfg.Logger.With("component", "nats-server")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(cfg.ConnectTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("broker: embedded server not ready after %s (is %s free?)", cfg.ConnectTimeout, cfg.Listen)
	}
	nopts := []nats.Option{nats.Name(cfg.Name), nats.InProcessServer(srv), nats.MaxReconnects(-1)}
	if token != "" {
		nopts = append(nopts, nats.Token(token))
	}
	nc, err := nats.Connect("", nopts...)
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("broker: connect in-process: %w", err)
	}
	b := &Broker{Conn: nc, srv: srv, unlock: unlock, logger: cfg.Logger}
	if b.JS, err = jetstream.New(nc); err != nil {
		b.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if !opts.DontListen {
		b.info = filepath.Join(cfg.DataDir, infoFile)
		data, _ := json.Marshal(embeddedInfo{URL: srv.ClientURL(), Token: token, PID: os.Getpid()})
		if err := writeFileAtomic(b.info, data, 0o600); err != nil {
			b.Close()
			return nil, fmt.Errorf("broker: %w", err)
		}
	}
	cfg.Logger.Info("embedded NATS started", "store", opts.StoreDir, "listen", b.ClientURL(), "sync_always", cfg.SyncAlways)
	return b, nil
}

// connectRunning connects to the embedded server another process runs on
// the same data directory.
func connectRunning(ctx context.Context, cfg Config) (*Broker, error) {
	data, err := os.ReadFile(filepath.Join(cfg.DataDir, infoFile))
	if err != nil {
		return nil, fmt.Errorf("broker: %s is in use by another Herald process that does not listen for clients (start it with a listen address, or stop it): %w", cfg.DataDir, err)
	}
	var info embeddedInfo
	if err := json.Unmarshal(data, &info); err != nil || info.URL == "" {
		return nil, fmt.Errorf("broker: %s: unreadable embedded server info", filepath.Join(cfg.DataDir, infoFile))
	}
	cfg.URL, cfg.Token = info.URL, secret.Value(info.Token)
	cfg.CredsFile, cfg.User, cfg.Password = "", "", ""
	return connectExternal(ctx, cfg)
}

func connectExternal(ctx context.Context, cfg Config) (*Broker, error) {
	logger := cfg.Logger
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { logger.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if !cfg.Token.IsZero() {
		opts = append(opts, nats.Token(cfg.Token.Reveal()))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password.Reveal()))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	if cfg.TLSCA != "" || cfg.TLSCert != "" {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(cfg.URL, opts...)
		done <- result{nc, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, fmt.Errorf("broker: connect: %w", r.err)
	}
	js, err := jetstream.New(r.nc)
	if err != nil {
		r.nc.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	return &Broker{Conn: r.nc, JS: js, logger: logger}, nil
}

// Close drains the connection and, for the embedded server, shuts it down
// and releases the data directory.
func (b *Broker) Close() {
	if b.Conn != nil {
		if err := b.Conn.Drain(); err != nil {
			b.Conn.Close()
		}
		for i := 0; i < 100 && !b.Conn.IsClosed(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		b.Conn.Close()
	}
	if b.srv != nil {
		if b.info != "" {
			_ = os.Remove(b.info)
		}
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	if b.unlock != nil {
		b.unlock()
	}
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// serverLogger sends nats-server's logs to slog.
type serverLogger struct{ l *slog.Logger }

func (s *serverLogger) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Debugf(format string, v ...any)  {}
func (s *serverLogger) Tracef(format string, v ...any)  {}
