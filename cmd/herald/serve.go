package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/email"
	"github.com/heraldhq/herald/channels/outbox"
	"github.com/heraldhq/herald/channels/slack"
	"github.com/heraldhq/herald/channels/sms"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/links"
	"github.com/heraldhq/herald/portal"
	"github.com/heraldhq/herald/subscribers"
)

func cmdServe(ctx context.Context, args []string, io *stdio) error {
	fs := newFlagSet("serve", "serve [flags]", io)
	var cf connFlags
	cf.register(fs)
	listen := fs.String("listen", "", "admin API and /metrics `address` (default 127.0.0.1:8080; env HERALD_LISTEN); keep it private")
	publicListen := fs.String("public-listen", "", "public pages and provider callbacks `address` (default 127.0.0.1:8081; env HERALD_PUBLIC_LISTEN); the one to expose")
	publicURL := fs.String("public-url", "", "public base `URL` of the public pages, links in messages and provider callbacks (default http://PUBLIC-LISTEN; env HERALD_PUBLIC_URL)")
	natsListen := fs.String("nats-listen", "", "loopback `address` where the embedded NATS server accepts CLI connections (default 127.0.0.1:4222; none: in-process only)")
	syncAlways := fs.Bool("sync-always", false, "fsync every JetStream write of the embedded server (no loss even on power failure; slower)")
	memoryLimit := fs.String("memory-limit", "", "soft memory `limit` of the process, e.g. 96MiB or 1GiB (default: GOMEMLIMIT, else 64MiB as a floor that follows the live heap; env HERALD_MEMORY_LIMIT)")
	replicas := fs.Int("replicas", 0, "`replicas` of streams and buckets on a JetStream cluster (1 or 3)")
	tmplDir := fs.String("templates", "", "`directory` of template overrides")
	logFormat := fs.String("log-format", "", "log format: text or json (env HERALD_LOG_FORMAT)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn or error (env HERALD_LOG_LEVEL)")
	allow := fs.String("webhook-allow", "", "comma-separated address `ranges` webhooks may reach despite the SSRF guard, e.g. 127.0.0.1/32 (env HERALD_WEBHOOK_ALLOW)")
	allowHTTP := fs.Bool("webhook-allow-http", false, "accept http:// webhook URLs (tests and private networks only)")
	strict := fs.Bool("strict", false, "refuse to start when a channel that has endpoints has no provider, and refuse new endpoints on such channels (env HERALD_STRICT)")
	fs.Usage = func() {
		fmt.Fprint(io.err, `Usage: herald serve [flags]

Runs the fan-out, one delivery loop per channel, the admin API (--listen,
keep it private) and the public pages (--public-listen: subscribe,
preferences, unsubscribe, provider callbacks; expose this one). Without
--nats-url it starts an embedded NATS server storing its data under --data.
Channels whose provider is not configured write to <data>/outbox.

Secrets come from the environment or the config file: HERALD_ADMIN_TOKEN
(the /v1 API's bearer token) and HERALD_SECRET_KEY (seals the links in
messages; HERALD_PREVIOUS_SECRET_KEY still opens those of a rotated key);
when unset, each is generated once and kept in the data directory.
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
	set(&cfg.PublicListen, *publicListen)
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
	if *memoryLimit != "" {
		if cfg.MemoryLimit, err = parseByteSize(*memoryLimit); err != nil {
			return usagef("--memory-limit: %v", err)
		}
	}
	cfg.Strict = cfg.Strict || *strict
	if *replicas != 0 {
		cfg.NATS.Replicas = *replicas
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.PublicListen
	}
	return serve(ctx, cfg, io)
}

// serve runs Herald until ctx ends.
func serve(ctx context.Context, cfg *fileConfig, io *stdio) error {
	logger, err := newLogger(cfg.Log, io.err)
	if err != nil {
		return &usageError{err}
	}
	if applyMemoryLimit(cfg.MemoryLimit, logger) {
		go followWorkingSet(ctx, defaultMemoryLimit, logger)
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return err
	}
	var tokenPath, keyPath string
	if cfg.AdminToken, tokenPath, err = persistedSecret(cfg.AdminToken, cfg.Data, "admin-token"); err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	startupWarnings(cfg, tokenPath, logger)
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
	renderer, err := cfg.renderer(catalog, logger.With("component", "templates"))
	if err != nil {
		return &usageError{err}
	}
	allow, err := cfg.webhookAllow()
	if err != nil {
		return &usageError{err}
	}
	// One DNS cache for every outbound request: webhooks, Slack, pages.
	if cfg.resolver, err = egress.NewResolver(cfg.Webhook.egressConfig(allow).DNS); err != nil {
		return &usageError{fmt.Errorf("webhook.dns: %w", err)}
	}
	chans, live, closers, err := buildChannels(cfg, allow, logger)
	if err != nil {
		return &usageError{err}
	}
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()

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
	topo, err := dispatcher.Setup(ctx, b.JS, dcfg)
	if err != nil {
		return err
	}
	if err := checkStrict(ctx, cfg, topo.Subscribers, logger); err != nil {
		return &usageError{err}
	}
	if cfg.Slack.live() {
		// The Slack channel keeps its threads in a bucket of the topology.
		sl, err := newSlack(cfg, allow, topo, logger)
		if err != nil {
			return &usageError{err}
		}
		chans[channels.Slack], live[channels.Slack] = sl, true
	}
	sealer, err := links.New(links.Config{Key: cfg.SecretKey, PreviousKey: cfg.PreviousSecretKey, BaseURL: cfg.PublicURL})
	if err != nil {
		return &usageError{err}
	}
	smsCap, err := dispatcher.NewSMSCap(ctx, b.JS, dispatcher.SMSCapConfig{
		PerSubscriber: cfg.SMS.DailyCap, Platform: cfg.SMS.PlatformDailyCap, Replicas: cfg.NATS.Replicas,
		Logger: logger.With("component", "sms-cap"), Registerer: reg,
	})
	if err != nil {
		return err
	}
	rules := cfg.subscriberRules(catalog, allow)
	d, err := dispatcher.New(ctx, dcfg, dispatcher.Deps{
		Conn: b.Conn, Channels: chans, Renderer: renderer, Catalog: catalog, Topology: topo,
		Rules: rules, Links: sealer, SMSCap: smsCap,
	})
	if err != nil {
		return err
	}
	pub, err := portal.New(ctx, cfg.portalConfig(catalog, rules, logger), portal.Deps{Dispatcher: d, JetStream: b.JS, Webhook: chans[channels.Webhook]})
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

	// Status-page sources (package ingest): the Statuspage receiver on
	// the public listener, GET /v1/sources on the admin API; the pollers
	// run beside the dispatcher.
	src, err := buildSources(ctx, cfg, b.JS, allow, logger)
	if err != nil {
		return err
	}
	admin, err := api.New(d, api.Config{
		AdminToken: cfg.AdminToken, Gatherer: reg, Sources: src.status,
		RequireLocales: cfg.RequireLocales, Logger: logger.With("component", "api"),
	})
	if err != nil {
		return &usageError{err}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	pubLn, err := net.Listen("tcp", cfg.PublicListen)
	if err != nil {
		_ = ln.Close()
		return err
	}
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
	}
	// Two surfaces: the admin API and /metrics on --listen, the public
	// pages and the provider callbacks on --public-listen.
	srv := newServer(admin)
	pubMux := http.NewServeMux()
	for pattern, h := range hooks(d, chans) {
		pubMux.Handle(pattern, h)
	}
	for pattern, h := range src.public {
		pubMux.Handle(pattern, h)
	}
	pubMux.Handle("/", pub.Handler())
	pubSrv := newServer(pubMux)
	httpErr := make(chan error, 2)
	go func() { httpErr <- srv.Serve(ln) }()
	go func() { httpErr <- pubSrv.Serve(pubLn) }()
	logger.Info("HTTP API listening", "addr", ln.Addr().String())
	logger.Info("public pages listening", "addr", pubLn.Addr().String(), "public_url", cfg.PublicURL)

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(runCtx) }()
	waitSources := src.start(runCtx)
	go func() {
		if err := pub.Run(runCtx); err != nil {
			logger.Error("public pages: following ender stopped", "err", err)
		}
	}()
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
	_ = pubSrv.Shutdown(shutdownCtx)
	stopRun()
	err = <-runErr
	waitSources()
	logger.Info("stopped")
	return err
}

// buildChannels wires each channel to its provider, or to the outbox when the
// provider is not configured. live reports which are real; closers release
// the providers' connections.
func buildChannels(cfg *fileConfig, allow []netip.Prefix, logger *slog.Logger) (map[string]channels.Channel, map[string]bool, []io.Closer, error) {
	chans := map[string]channels.Channel{}
	live := map[string]bool{}
	var closers []io.Closer
	ec := cfg.webhookEgress(allow)
	wh, err := webhook.New(webhook.Config{
		ConnectTimeout: ec.ConnectTimeout, Timeout: ec.Timeout,
		MaxResponseBytes: cfg.Webhook.MaxResponseBytes, AllowHTTP: cfg.Webhook.AllowHTTP,
		PermanentStatuses: cfg.Webhook.PermanentStatuses,
		IdleConnTimeout:   ec.IdleConnTimeout, MaxIdleConnsPerHost: ec.MaxIdleConnsPerHost, MaxIdleConns: ec.MaxIdleConns,
		TLSSessionCacheSize: ec.TLSSessionCacheSize, DNS: ec.DNS, Resolver: ec.Resolver,
		Allow: allow, Logger: logger.With("channel", channels.Webhook),
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("webhook: %w", err)
	}
	chans[channels.Webhook], live[channels.Webhook] = wh, true

	e := cfg.Email
	dkim, err := cfg.emailDKIM()
	if err != nil {
		return nil, nil, nil, err
	}
	// Without a relay, the email outbox writes the very message the SMTP
	// channel would submit (From, Reply-To, List-Id, DKIM).
	var renderer *email.Renderer
	if e.From != "" && e.Host == "" {
		if renderer, err = cfg.emailRenderer(dkim, e.From); err != nil {
			return nil, nil, nil, err
		}
	}
	if e.Host != "" {
		ecfg := email.Config{
			Host: e.Host, Port: e.Port, Username: e.Username, Password: e.Password,
			Auth: email.AuthMethod(e.Auth), TLS: email.TLSMode(e.TLS), From: e.From, ReplyTo: e.ReplyTo,
			ListID: e.ListID, Pool: e.Pool, DKIM: dkim, Logger: logger.With("channel", channels.Email), // email.rate: see dispatcherConfig
		}
		ch, err := email.New(ecfg)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("email: %w", err)
		}
		chans[channels.Email], live[channels.Email] = ch, true
		closers = append(closers, ch)
	}
	if s := cfg.SMS; s.AccountSID != "" {
		// Twilio signs status callbacks with the account's auth token: an
		// API key alone sends, but receipts are then switched off.
		callback := sms.CallbackURL(cfg.PublicURL)
		if s.AuthToken.IsZero() {
			callback = ""
			logger.Warn("SMS delivery receipts are off: Twilio signs its status callbacks with the account's auth token, which is not set (sms.auth_token / HERALD_TWILIO_AUTH_TOKEN)")
		}
		ch, err := sms.New(sms.Config{
			AccountSID: s.AccountSID, AuthToken: s.AuthToken, APIKey: s.APIKey, APISecret: s.APISecret,
			From: s.From, MessagingServiceSID: s.MessagingServiceSID, BaseURL: s.BaseURL,
			StatusCallback: callback, Rate: rate.Inf, // sms.rate: see dispatcherConfig
			Logger: logger.With("channel", channels.SMS),
		})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sms: %w", err)
		}
		chans[channels.SMS], live[channels.SMS] = ch, true
	}
	for _, name := range []string{channels.Email, channels.SMS, channels.Slack} {
		if chans[name] != nil || (name == channels.Slack && cfg.Slack.live()) {
			continue // Slack is built once its thread bucket exists
		}
		ocfg := outbox.Config{Dir: filepath.Join(cfg.Data, "outbox"), Channel: name, Logger: logger.With("channel", name)}
		if name == channels.Email {
			ocfg.Email = renderer
		}
		ob, err := outbox.New(ocfg)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s outbox: %w", name, err)
		}
		chans[name] = ob
	}
	return chans, live, closers, nil
}

// newSlack builds the live Slack channel: bot mode with the configured
// token, incoming webhooks through the SSRF-guarded client, threads kept in
// the slack_threads bucket.
func newSlack(cfg *fileConfig, allow []netip.Prefix, topo *dispatcher.Topology, logger *slog.Logger) (*slack.Channel, error) {
	client, err := egress.NewClient(cfg.egressConfig(allow))
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	ch, err := slack.New(cfg.slackConfig(client, slack.NewKVThreads(topo.SlackThreads), logger.With("channel", channels.Slack)))
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	return ch, nil
}

// portalConfig derives the public pages' settings.
func (c *fileConfig) portalConfig(catalog *incident.Catalog, rules subscribers.Rules, logger *slog.Logger) portal.Config {
	p := c.Portal
	return portal.Config{
		PublicURL: c.PublicURL, Catalog: catalog, Rules: rules, TrustProxyHeaders: p.TrustProxyHeaders,
		Replicas: c.NATS.Replicas, Logger: logger.With("component", "portal"),
		Limits: portal.Limits{
			IP:          portal.Limit{N: p.IPLimit, Per: p.IPWindow},
			Address:     portal.Limit{N: p.AddressLimit, Per: p.AddressWindow},
			PhonePrefix: portal.Limit{N: p.PhonePrefixLimit, Per: p.PhonePrefixWindow},
		},
	}
}

// hooks returns the provider callback handlers, served on the public
// listener.
func hooks(d *dispatcher.Dispatcher, chans map[string]channels.Channel) map[string]http.Handler {
	h := map[string]http.Handler{}
	if ch, ok := chans[channels.SMS].(*sms.Channel); ok {
		if v := ch.CallbackVerifier(); v != nil {
			h["POST "+sms.CallbackPath] = sms.CallbackHandler(v, func(ctx context.Context, cb sms.Callback) error {
				err := d.RecordReceipt(ctx, dispatcher.ProviderReceipt{
					DeliveryID: cb.DeliveryID, SubscriberID: cb.SubscriberID, EndpointID: cb.EndpointID,
					Channel: channels.SMS, ProviderID: cb.MessageSID, Status: string(cb.Status), Err: cb.Err(),
				})
				if errors.Is(err, dispatcher.ErrUnknownDelivery) {
					return nil // not one of Herald's messages: nothing to record
				}
				return err
			})
		}
	}
	return h
}
