package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/dispatcher"
)

// connFlags are the flags every command that talks to NATS shares.
type connFlags struct {
	config  string
	data    string
	natsURL string
	creds   string
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "configuration `file` (.yaml, .yml or .toml)")
	fs.StringVar(&c.data, "data", "", "data `directory` of the embedded NATS server (default ./herald-data; env HERALD_DATA)")
	fs.StringVar(&c.natsURL, "nats-url", "", "external NATS `URL`s, comma separated; empty uses the embedded server (env HERALD_NATS_URL)")
	fs.StringVar(&c.creds, "nats-creds", "", "NATS credentials `file` (env HERALD_NATS_CREDS)")
}

// load reads the configuration and applies the flags.
func (c *connFlags) load(io *stdio) (*fileConfig, error) {
	cfg, err := loadConfig(c.config, io.env)
	if err != nil {
		return nil, &usageError{err}
	}
	if c.data != "" {
		cfg.Data = c.data
	}
	if c.natsURL != "" {
		cfg.NATS.URL = c.natsURL
	}
	if c.creds != "" {
		cfg.NATS.Creds = c.creds
	}
	return cfg, nil
}

// session is an open connection for an admin command.
type session struct {
	cfg  *fileConfig
	b    *broker.Broker
	topo *dispatcher.Topology
}

// open connects to NATS (the running embedded server of the data directory,
// a fresh in-process one when none runs, or the external URL) and makes sure
// Herald's streams and buckets exist.
func (c *connFlags) open(ctx context.Context, io *stdio) (*session, error) {
	cfg, err := c.load(io)
	if err != nil {
		return nil, err
	}
	bc := cfg.brokerConfig(slog.New(slog.DiscardHandler))
	bc.Listen = "none" // a CLI command never serves other processes
	b, err := broker.Open(ctx, bc)
	if err != nil {
		return nil, err
	}
	topo, err := dispatcher.Attach(ctx, b.JS, cfg.dispatcherConfig())
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("setting up streams: %w", err)
	}
	return &session{cfg: cfg, b: b, topo: topo}, nil
}

func (s *session) close() { s.b.Close() }
