package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/dispatcher"
	"github.com/heraldhq/herald/egress"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/ingest"
	"github.com/heraldhq/herald/secret"
)

// ingestConfig is the ingest: section, the status-page sources.
type ingestConfig struct {
	Statuspage statuspageConfig `yaml:"statuspage" toml:"statuspage"`
	// Feeds are Atom or RSS feeds to poll.
	Feeds []feedConfig `yaml:"feeds" toml:"feeds"`
}

type statuspageConfig struct {
	// Token is the secret last segment of the webhook URL
	// /ingest/statuspage/<token>; the receiver is mounted only when it is
	// set. Env HERALD_STATUSPAGE_TOKEN. At least 16 characters.
	Token secret.Value `yaml:"token" toml:"token"`
	// Components maps a Statuspage component (code or name) to a catalog
	// id. Unlisted components with a code map to the slug of their name.
	Components map[string]string `yaml:"components" toml:"components"`
	// Impact maps none, minor, major, critical (and maintenance) to a
	// priority. Defaults to critical P1, major P2, minor P3, none P4.
	Impact map[string]incident.Priority `yaml:"impact" toml:"impact"`
	// URL is the page polled through its public API
	// (https://status.example.com); none polls nothing. Env
	// HERALD_STATUSPAGE_URL.
	URL string `yaml:"url" toml:"url"`
	// Interval between polls. Defaults to 60s.
	Interval time.Duration `yaml:"interval" toml:"interval"`
	// MaxBackoff bounds the delay after failed polls. Defaults to 30m.
	MaxBackoff time.Duration `yaml:"max_backoff" toml:"max_backoff"`
}

type feedConfig struct {
	// Name identifies the feed (letters, digits, '-', '_'); it prefixes
	// the incident ids of its events. Required.
	Name string `yaml:"name" toml:"name"`
	// URL of the Atom or RSS feed. Required.
	URL string `yaml:"url" toml:"url"`
	// Interval and MaxBackoff as for the Statuspage poller.
	Interval   time.Duration `yaml:"interval" toml:"interval"`
	MaxBackoff time.Duration `yaml:"max_backoff" toml:"max_backoff"`
	// Components every event of the feed names. Defaults to none (the
	// whole platform).
	Components []string `yaml:"components" toml:"components"`
	// Priority of every event. Defaults to none (unrated).
	Priority incident.Priority `yaml:"priority" toml:"priority"`
	// Statuses adds words (lower-case) read as statuses to the built-in
	// English, French and Italian ones.
	Statuses map[string]incident.Status `yaml:"statuses" toml:"statuses"`
	// DefaultStatus of an entry where no word is found. Defaults to
	// investigating.
	DefaultStatus incident.Status `yaml:"default_status" toml:"default_status"`
}

// mapping is the Statuspage mapping of the configuration.
func (c statuspageConfig) mapping() ingest.Mapping {
	return ingest.Mapping{Components: c.Components, Impact: c.Impact}
}

// feedConverter is the converter of a feed's configuration.
func (c feedConfig) converter() (*ingest.FeedConverter, error) {
	return ingest.NewFeedConverter(c.pollerConfig(ingest.PollConfig{}))
}

func (c feedConfig) pollerConfig(base ingest.PollConfig) ingest.FeedPollerConfig {
	base.Name, base.Interval, base.MaxBackoff = c.Name, c.Interval, c.MaxBackoff
	return ingest.FeedPollerConfig{PollConfig: base, URL: c.URL, Components: c.Components, Priority: c.Priority,
		Statuses: c.Statuses, DefaultStatus: c.DefaultStatus}
}

// sources are the running status-page sources of serve.
type sources struct {
	// public are the handlers to mount on the public listener (the
	// Statuspage receiver); status serves GET /v1/sources on the admin
	// API.
	public map[string]http.Handler
	status http.Handler
	run    []func(ctx context.Context) error
}

// buildSources opens the ingest store and builds the configured sources,
// publishing as `herald publish` does. Without sources it still serves
// GET /v1/sources (an empty list).
func buildSources(ctx context.Context, cfg *fileConfig, js jetstream.JetStream, allow []netip.Prefix, logger *slog.Logger) (*sources, error) {
	in := cfg.Ingest
	out := &sources{public: map[string]http.Handler{}}
	var list []ingest.Source
	if in.Statuspage.Token.IsZero() && in.Statuspage.URL == "" && len(in.Feeds) == 0 {
		out.status = ingest.NewSources().Handler()
		return out, nil
	}
	logger = logger.With("component", "ingest")
	maxBytes := cfg.Dispatch.MaxEventBytes
	publish := func(ctx context.Context, ev *incident.Event) error {
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = dispatcher.PublishEvent(ctx, js, data, maxBytes)
		return err
	}
	store, err := ingest.OpenStore(ctx, js, publish, ingest.StoreConfig{Replicas: cfg.NATS.Replicas, Logger: logger})
	if err != nil {
		return nil, err
	}
	if !in.Statuspage.Token.IsZero() {
		h, err := ingest.NewStatuspageHandler(ingest.WebhookConfig{Token: in.Statuspage.Token, Mapping: in.Statuspage.mapping(), Logger: logger}, store)
		if err != nil {
			return nil, &usageError{fmt.Errorf("ingest.statuspage: %w", err)}
		}
		out.public[ingest.StatuspagePattern] = h
		list = append(list, h)
		logger.Info("Statuspage webhook receiver", "path", "/ingest/statuspage/<token>")
	}
	var client *http.Client
	policy := egress.Policy{Allow: allow}
	if in.Statuspage.URL != "" || len(in.Feeds) > 0 {
		// The pages are reached through the SSRF guard of webhooks.
		if client, err = egress.NewClient(cfg.egressConfig(allow)); err != nil {
			return nil, err
		}
	}
	base := ingest.PollConfig{Client: client, Logger: logger}
	if u := in.Statuspage.URL; u != "" {
		if _, err := policy.CheckURL(u, cfg.Webhook.AllowHTTP); err != nil {
			return nil, &usageError{fmt.Errorf("ingest.statuspage.url: %w", err)}
		}
		pc := base
		pc.Name, pc.Interval, pc.MaxBackoff = "statuspage", in.Statuspage.Interval, in.Statuspage.MaxBackoff
		p, err := ingest.NewStatuspagePoller(ingest.StatuspagePollerConfig{PollConfig: pc, URL: u, Mapping: in.Statuspage.mapping()}, store)
		if err != nil {
			return nil, &usageError{fmt.Errorf("ingest.statuspage: %w", err)}
		}
		list = append(list, p)
		out.run = append(out.run, p.Run)
	}
	names := map[string]bool{"statuspage": true}
	for i, f := range in.Feeds {
		if names[f.Name] {
			return nil, usagef("ingest.feeds[%d]: the name %q is used twice", i, f.Name)
		}
		names[f.Name] = true
		if _, err := policy.CheckURL(f.URL, cfg.Webhook.AllowHTTP); err != nil {
			return nil, usagef("ingest.feeds[%d].url: %v", i, err)
		}
		p, err := ingest.NewFeedPoller(f.pollerConfig(base), store)
		if err != nil {
			return nil, usagef("ingest.feeds[%d]: %v", i, err)
		}
		list = append(list, p)
		out.run = append(out.run, p.Run)
	}
	out.status = ingest.NewSources(list...).Handler()
	return out, nil
}

// start runs the pollers until ctx ends; wait waits for them to stop.
func (s *sources) start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for _, run := range s.run {
		wg.Go(func() { _ = run(ctx) })
	}
	return wg.Wait
}

// cmdIngest runs the ingest subcommands.
func cmdIngest(ctx context.Context, args []string, io *stdio) error {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprint(io.err, "Usage: herald ingest test (--statuspage FILE | --feed FILE [--name NAME]) [--config FILE]\n")
		return usagef("expected the subcommand test")
	}
	fs := newFlagSet("ingest test", "ingest test (--statuspage FILE | --feed FILE) [flags]", io)
	var cf connFlags
	cf.register(fs)
	sp := fs.String("statuspage", "", "a saved Statuspage webhook payload, or an answer of its API (incidents.json, scheduled-maintenances.json); - for stdin")
	feed := fs.String("feed", "", "a saved Atom or RSS feed; - for stdin")
	name := fs.String("name", "", "the feed of the configuration (ingest.feeds) whose settings convert --feed (default: the first, else built-in settings)")
	fs.Usage = func() {
		fmt.Fprint(io.err, `Usage: herald ingest test (--statuspage FILE | --feed FILE) [flags]

Converts a saved Statuspage payload or feed as the receiver and the pollers
would, with the configuration's mappings, and prints the events it would
publish, one JSON object per line, sequences numbered from 1 in update
order (a running Herald continues each incident's own numbering).
Nothing is published.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if (*sp == "") == (*feed == "") || fs.NArg() > 0 {
		return usagef("give one of --statuspage FILE or --feed FILE")
	}
	cfg, err := cf.load(io)
	if err != nil {
		return err
	}
	var incs []*ingest.Incident
	var problems []error
	if *sp != "" {
		data, err := readInput(*sp, io.in)
		if err != nil {
			return err
		}
		if incs, problems, err = convertStatuspage(data, cfg.Ingest.Statuspage.mapping()); err != nil {
			return &usageError{err}
		}
	} else {
		data, err := readInput(*feed, io.in)
		if err != nil {
			return err
		}
		fc := feedConfig{Name: "feed"}
		for _, f := range cfg.Ingest.Feeds {
			if *name == "" || f.Name == *name {
				fc = f
				break
			}
		}
		if *name != "" && fc.Name != *name {
			return usagef("no feed %q in the configuration", *name)
		}
		conv, err := fc.converter()
		if err != nil {
			return &usageError{err}
		}
		if incs, problems, err = conv.Convert(data); err != nil {
			return &usageError{err}
		}
	}
	for _, p := range problems {
		fmt.Fprintf(io.err, "skipped: %v\n", p)
	}
	enc := json.NewEncoder(io.out)
	enc.SetEscapeHTML(false)
	n := 0
	for _, inc := range incs {
		for i, u := range inc.Updates {
			ev := u.Event
			ev.Sequence = int64(i + 1)
			if err := enc.Encode(&ev); err != nil {
				return err
			}
			n++
		}
	}
	fmt.Fprintf(io.err, "%d events from %d incidents\n", n, len(incs))
	return nil
}

// convertStatuspage converts a webhook payload or an API answer.
func convertStatuspage(data []byte, m ingest.Mapping) ([]*ingest.Incident, []error, error) {
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("ingest.statuspage: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(incident.TrimBOM(data), &probe); err != nil {
		return nil, nil, &ingest.PayloadError{Err: err}
	}
	var list []ingest.StatuspageIncident
	if _, ok := probe["incident"]; ok || (probe["incidents"] == nil && probe["scheduled_maintenances"] == nil) {
		p, err := ingest.ParseStatuspageWebhook(data)
		if err != nil {
			return nil, nil, err
		}
		if p.Incident == nil {
			return nil, nil, errors.New("no incident in the payload (a component update: the receiver ignores it)")
		}
		list = append(list, *p.Incident)
	} else {
		l, err := ingest.ParseStatuspageList(data)
		if err != nil {
			return nil, nil, err
		}
		list = append(slices.Clone(l.Incidents), l.ScheduledMaintenances...)
	}
	var incs []*ingest.Incident
	var problems []error
	for i := range list {
		inc, err := m.Convert(&list[i])
		if err != nil {
			problems = append(problems, err)
			continue
		}
		problems = append(problems, inc.Problems...)
		incs = append(incs, inc)
	}
	return incs, problems, nil
}
