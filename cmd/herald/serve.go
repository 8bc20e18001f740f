package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/outbox"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

func cmdServe(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("serve", "serve [flags]", io)
	var cf connFlags
	cf.register(fs)
	listen := fs.String("listen", "", "HTTP API `address` (default 127.0.0.1:8080; env HERALD_LISTEN)")
	publicURL := fs.String("public-url", "", "public base `URL` for unsubscribe links and provider callbacks (default http://LISTEN; env HERALD_PUBLIC_URL)")
	natsListen := fs.String("nats-listen", "", "loopback `address` where the embedded NATS server accepts CLI connections (default 127.0.0.1:4222; none: in-process only)")
	syncAlways := fs.Bool("sync-always", false, "fsync every JetStream write of the embedded server (no loss even on power failure; slower)")
	replicas := fs.Int("replicas", 0, "`replicas` of streams and buckets on a JetStream cluster (1 or 3)")
	tmplDir := fs.String("templates", "", "`directory` of template overrides")
	logFormat := fs.String("log-format", "", "log format: text or json (env HERALD_LOG_FORMAT)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn or error (env HERALD_LOG_LEVEL)")
	allow := fs.String("webhook-allow", "", "comma-separated address `ranges` webhooks may reach despite the SSRF guard, e.g. 127.0.0.1/32 (env HERALD_WEBHOOK_ALLOW)")
	allowHTTP := fs.Bool("webhook-allow-http", false, "accept http:// webhook URLs (tests and private networks only)")
	fs.Usage = func() {
		fmt.Fprint(io.err, `Usage: herald serve [flags]

Runs the fan-out, one delivery loop per channel and the HTTP API. Without
--nats-url it starts an embedded NATS server storing its data under --data.
Channels whose provider is not configured write to <data>/outbox.

Secrets come from the environment or the config file: HERALD_ADMIN_TOKEN
(the /v1 API's bearer token) and HERALD_SECRET_KEY (seals unsubscribe
links); when unset, each is generated once and kept in the data directory.
Environment variables override the config file; flags override both.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := cf.load(io)
	if err != nil {
		return err
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Listen, *listen)
	set(&cfg.PublicURL, *publicURL)
	set(&cfg.NATS.Listen, *natsListen)
	set(&cfg.Templates.Dir, *tmplDir)
	set(&cfg.Log.Format, *logFormat)
	set(&cfg.Log.Level, *logLevel)
	if *allow != "" {
		cfg.Webhook.Allow = strings.Split(*allow, ",")
	}
	cfg.Webhook.AllowHTTP = cfg.Webhook.AllowHTTP || *allowHTTP
	cfg.NATS.SyncAlways = cfg.NATS.SyncAlways || *syncAlways
	if *replicas != 0 {
		cfg.NATS.Replicas = *replicas
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.Listen
	}
	return serve(ctx, cfg, io)
}

// serve runs Herald until ctx ends.
func serve(ctx context.Context, cfg *fileConfig, io *stdio) error {
	logger, err := newLogger(cfg.Log, io.err)
	if err != nil {
		return &usageError{err}
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return err
	}
	var tokenPath, keyPath string
	if cfg.AdminToken, tokenPath, err = persistedSecret(cfg.AdminToken, cfg.Data, "admin-token"); err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if tokenPath != "" {
		logger.Info("admin token kept in the data directory (set HERALD_ADMIN_TOKEN to choose it)", "file", tokenPath)
	}
	if cfg.SecretKey, keyPath, err = persistedSecret(cfg.SecretKey, cfg.Data, "secret-key"); err != nil {
		return fmt.Errorf("secret key: %w", err)
	}
	if keyPath != "" && cfg.NATS.URL != "" {
		logger.Warn("secret key generated locally: every Herald process of a cluster must share it (set HERALD_SECRET_KEY)", "file", keyPath)
	}
	catalog, err := cfg.catalog()
	if err != nil {
		return &usageError{err}
	}
	renderer, err := templates.New(templates.Config{
		Dir: cfg.Templates.Dir, Components: catalog, Fallback: cfg.Templates.Fallback,
		SMSSegments: cfg.Templates.SMSSegments, PublicURL: cfg.PublicURL, Logger: logger.With("component", "templates"),
	})
	if err != nil {
		return &usageError{fmt.Errorf("templates: %w", err)}
	}
	allow, err := cfg.webhookAllow()
	if err != nil {
		return &usageError{err}
	}
	chans, live, err := buildChannels(cfg, allow, logger)
	if err != nil {
		return &usageError{err}
	}

	b, err := broker.Open(ctx, cfg.brokerConfig(logger))
	if err != nil {
		return err
	}
	defer b.Close()
	if b.Embedded() {
		logger.Info("embedded NATS", "data", cfg.Data, "clients", orDefault(b.ClientURL(), "in-process only"))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	dcfg := cfg.dispatcherConfig()
	dcfg.Logger, dcfg.Registerer = logger, reg
	d, err := dispatcher.New(ctx, dcfg, dispatcher.Deps{
		Conn: b.Conn, Channels: chans, Renderer: renderer, Catalog: catalog,
		Rules: subscribers.Rules{Components: catalog, AllowHTTPWebhooks: cfg.Webhook.AllowHTTP},
	})
	if err != nil {
		return err
	}
	for _, name := range channels.Names() {
		mode := "outbox (" + filepath.Join(cfg.Data, "outbox", name) + ")"
		if live[name] {
			mode = "live"
		}
		logger.Info("channel", "name", name, "mode", mode)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           d.Handler(dispatcher.APIOptions{AdminToken: cfg.AdminToken, Gatherer: reg}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Serve(ln) }()
	logger.Info("HTTP API listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL)

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(runCtx) }()
	select {
	case <-ctx.Done():
		logger.Info("stopping: finishing sends in flight")
	case err := <-httpErr:
		logger.Error("HTTP server stopped", "err", err)
	case err := <-runErr:
		if err != nil {
			logger.Error("dispatcher stopped", "err", err)
		}
		runErr <- err
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	stopRun()
	err = <-runErr
	logger.Info("stopped")
	return err
}

// buildChannels wires each channel to its provider, or to the outbox when the
// provider is not configured. live reports which are real.
func buildChannels(cfg *fileConfig, allow []netip.Prefix, logger *slog.Logger) (map[string]channels.Channel, map[string]bool, error) {
	chans := map[string]channels.Channel{}
	live := map[string]bool{}
	wh, err := webhook.New(webhook.Config{
		ConnectTimeout: cfg.Webhook.ConnectTimeout, Timeout: cfg.Webhook.Timeout,
		MaxResponseBytes: cfg.Webhook.MaxResponseBytes, AllowHTTP: cfg.Webhook.AllowHTTP,
		Allow: allow, Logger: logger.With("channel", channels.Webhook),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("webhook: %w", err)
	}
	chans[channels.Webhook], live[channels.Webhook] = wh, true
	for _, name := range []string{channels.Email, channels.SMS, channels.Slack} {
		ob, err := outbox.New(outbox.Config{Dir: filepath.Join(cfg.Data, "outbox"), Channel: name, Logger: logger.With("channel", name)})
		if err != nil {
			return nil, nil, fmt.Errorf("%s outbox: %w", name, err)
		}
		chans[name] = ob
	}
	return chans, live, nil
}
