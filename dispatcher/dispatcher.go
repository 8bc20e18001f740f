package dispatcher

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/links"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// Renderer turns updates and notices into messages; *templates.Renderer is
// the implementation.
type Renderer interface {
	Render(u templates.Update, channel string, rc templates.Recipient) (*templates.Rendered, error)
	RenderNotice(n templates.Notice, channel string, rc templates.Recipient) (*templates.Rendered, error)
}

// Deps are the dispatcher's collaborators.
type Deps struct {
	// Conn is the NATS connection; JetStream is used through it.
	Conn *nats.Conn
	// Channels maps every channel name to its implementation: the real
	// provider, or an outbox when the provider is not configured.
	Channels map[string]channels.Channel
	// Renderer renders messages.
	Renderer Renderer
	// Catalog lists the known components.
	Catalog *incident.Catalog
	// Rules validate subscribers written through the API.
	Rules subscribers.Rules
	// Topology, when set, is what [Setup] returned for the same Config
	// (a caller that needs one of its buckets to build a channel runs
	// Setup first); New then does not set the streams up again.
	Topology *Topology
	// Retry, when set, replaces every channel's Backoff.
	Retry RetryPolicy
	// Links, when set, seals the unsubscribe and preference links (it
	// holds the previous key of a rotation); otherwise they are sealed
	// with Config.SecretKey under Config.PublicURL.
	Links *links.Sealer
	// SMSCap, when set, bounds the SMS sent per subscriber and per day.
	SMSCap *SMSCap
}

// Dispatcher runs Herald's pipeline. Create it with [New], start it with
// [Dispatcher.Run], serve its API with [Dispatcher.Handler].
type Dispatcher struct {
	cfg      Config
	logger   *slog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	topo     *Topology
	catalog  *incident.Catalog
	renderer Renderer
	channels map[string]channels.Channel
	retry    RetryPolicy

	index   *subscribers.Index
	store   *subscribers.Store
	snaps   *snapshots
	leases  *leases
	pacer   *pacer
	health  *health
	supp    *Suppressions
	dlq     *DeadLetters
	log     *deliveryLog
	events  *eventCache
	links   *links.Sealer
	smsCap  *SMSCap
	metrics *metrics
	fails   *endpointFailures
	maint   *maintenance // maintenance reminders and reschedulings
	// recalls mirrors the recalled updates; progress tracks the
	// incidents asked about (recall.go, progress.go).
	recalls  *recalls
	progress *Progress

	locMu     sync.RWMutex
	locations map[string]*time.Location

	running atomic.Bool
	// stalls counts the commits whose writes JetStream does not
	// acknowledge: while any does, no send starts (see writesStalled);
	// flowing are told when the count is back to zero.
	stalls  atomic.Int32
	flowMu  sync.Mutex
	flowing []func()
}

// writesStalled reports whether JetStream leaves writes of this process
// unacknowledged (an outage, a lost quorum): a send now could not be
// recorded, so sends wait until writes are acknowledged again.
func (d *Dispatcher) writesStalled() bool { return d.stalls.Load() > 0 }

// stallBegins counts a commit whose writes stall.
func (d *Dispatcher) stallBegins() { d.stalls.Add(1) }

// stallEnds counts a stalled commit done; the last one tells the delivery
// loops that writes flow again.
func (d *Dispatcher) stallEnds() {
	if d.stalls.Add(-1) > 0 {
		return
	}
	d.flowMu.Lock()
	fs := d.flowing
	d.flowMu.Unlock()
	for _, f := range fs {
		f()
	}
}

// onWritesFlow registers f, called each time writes flow again after a
// stall.
func (d *Dispatcher) onWritesFlow(f func()) {
	d.flowMu.Lock()
	d.flowing = append(d.flowing, f)
	d.flowMu.Unlock()
}

// New sets up the streams, buckets and consumers and builds the dispatcher.
func New(ctx context.Context, cfg Config, deps Deps) (*Dispatcher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Conn == nil || deps.Renderer == nil {
		return nil, errors.New("dispatcher: a NATS connection and a renderer are required")
	}
	for _, name := range channels.Names() {
		if deps.Channels[name] == nil {
			return nil, fmt.Errorf("dispatcher: no implementation for channel %s (use an outbox)", name)
		}
	}
	js, err := jetstream.New(deps.Conn)
	if err != nil {
		return nil, err
	}
	// The leases' renewals are written asynchronously on a context of
	// their own, answered or given up within leaseRenewWait.
	leaseJS, err := jetstream.New(deps.Conn, jetstream.WithPublishAsyncTimeout(leaseRenewWait))
	if err != nil {
		return nil, err
	}
	topo := deps.Topology
	if topo == nil {
		if topo, err = Setup(ctx, js, cfg); err != nil {
			return nil, fmt.Errorf("dispatcher: setup: %w", err)
		}
	}
	lk := deps.Links
	if lk == nil {
		if lk, err = links.New(links.Config{Key: cfg.SecretKey, BaseURL: cfg.PublicURL, Now: cfg.Now}); err != nil {
			return nil, err
		}
	}
	st, err := topo.Suppressions.Status(ctx)
	if err != nil {
		return nil, err
	}
	dlog, err := newDeliveryLog(deps.Conn, topo.DeliveryLog)
	if err != nil {
		return nil, err
	}
	catalog := deps.Catalog
	if catalog == nil {
		catalog, _ = incident.NewCatalog(nil)
	}
	m := newMetrics(cfg.Registerer)
	d := &Dispatcher{
		cfg: cfg, logger: cfg.Logger, nc: deps.Conn, js: js, topo: topo, catalog: catalog,
		renderer: deps.Renderer, channels: deps.Channels, retry: deps.Retry,
		index:     subscribers.NewIndex(cfg.Logger.With("component", "subscribers")),
		store:     subscribers.NewStoreCache(topo.Subscribers, deps.Rules, cfg.SubscriberCache),
		snaps:     newSnapshots(topo.Snapshots, cfg.Logger),
		leases:    newLeases(topo.Leases, leaseJS, cfg.LeaseTTL, holderID()),
		pacer:     &pacer{kv: topo.Pacing, now: cfg.Now},
		health:    newHealth(cfg.Now, m.infraErrors),
		supp:      newSuppressions(topo.Suppressions, st.TTL(), cfg.Now, cfg.Logger),
		dlq:       &DeadLetters{js: js, stream: topo.DeadLetters, now: cfg.Now},
		log:       dlog,
		events:    newEventCache(topo.Incidents, 512),
		links:     lk,
		smsCap:    deps.SMSCap,
		metrics:   m,
		fails:     newEndpointFailures(topo.EndpointFailures, cfg.Logger),
		locations: map[string]*time.Location{},
		recalls:   newRecalls(topo.Recalls, cfg.Logger),
		progress:  newProgress(topo, cfg.Now),
	}
	if d.maint, err = newMaintenance(d.snaps, cfg.Registerer); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(newBacklog(topo.Deliveries)); err != nil {
			return nil, fmt.Errorf("dispatcher: metrics: %w", err)
		}
	}
	d.index.OnChange(func(s *subscribers.Subscriber, rev uint64, deleted bool) {
		if deleted {
			d.store.Forget(s.ID)
			return
		}
		d.store.Prime(s, rev)
	})
	return d, nil
}

// Run starts the watches, the fan-out and one delivery loop per channel, and
// blocks until ctx ends; then it stops pulling work and lets sends in flight
// finish (up to the shutdown timeout).
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("dispatcher: already running")
	}
	watchCtx, stopWatches := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatches()
	var watches sync.WaitGroup
	for _, w := range []func(context.Context) error{
		func(ctx context.Context) error { return d.index.Watch(ctx, d.topo.Subscribers) },
		d.snaps.watch,
		d.supp.watch,
		d.fails.watch,
		d.recalls.watch,
	} {
		watches.Add(1)
		go func() {
			defer watches.Done()
			if err := w(watchCtx); err != nil {
				d.logger.Error("watch stopped", "err", err)
			}
		}()
	}
	// Work starts once the state mirrors are loaded, so that the first
	// update reaches the whole audience.
	for _, ready := range []<-chan struct{}{d.index.Ready(), d.snaps.ready, d.supp.ready, d.fails.ready, d.recalls.ready} {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil
		}
	}
	d.logger.Info("state loaded", "subscribers", d.index.Len())
	fo, err := newFanout(d)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return fo.run(gctx) })
	for _, name := range channels.Names() {
		dl, err := newDeliverer(d, name, d.channels[name])
		if err != nil {
			return err
		}
		g.Go(func() error { return dl.run(gctx) })
	}
	err = g.Wait()
	stopWatches()
	watches.Wait()
	return err
}

// Ready reports whether the dispatcher runs with its state loaded and NATS
// connected.
func (d *Dispatcher) Ready() bool {
	if !d.running.Load() || !d.nc.IsConnected() {
		return false
	}
	for _, ready := range []<-chan struct{}{d.index.Ready(), d.snaps.ready, d.supp.ready, d.fails.ready, d.recalls.ready} {
		select {
		case <-ready:
		default:
			return false
		}
	}
	return true
}

// Trouble is a component of Herald's own infrastructure that failed
// recently and has not worked since.
type Trouble = componentTrouble

// Troubles returns the components of Herald's own infrastructure (streams
// and buckets) that failed within the last 30 seconds and have not worked
// since: while there are any, Herald is degraded (its work waits and tries
// again, without using delivery attempts).
func (d *Dispatcher) Troubles() []Trouble { return d.health.troubles() }

// Subscribers returns the subscriber store, for the CLI and tests.
func (d *Dispatcher) Subscribers() *subscribers.Store { return d.store }

// Suppressions returns the suppression list.
func (d *Dispatcher) Suppressions() *Suppressions { return d.supp }

// DeadLetters returns the dead letters.
func (d *Dispatcher) DeadLetters() *DeadLetters { return d.dlq }

// Deliveries returns the delivery log records q selects, oldest first.
func (d *Dispatcher) Deliveries(ctx context.Context, q Query) ([]Record, error) {
	return d.log.list(ctx, q)
}

// Snapshot returns the snapshot of an incident, or nil.
func (d *Dispatcher) Snapshot(ctx context.Context, incidentID string) (*Snapshot, error) {
	s, _, err := d.snaps.get(ctx, incidentID)
	return s, err
}

// resolve returns a subscriber and one of its endpoints as they are now;
// nil endpoint when either no longer exists.
func (d *Dispatcher) resolve(ctx context.Context, subscriberID, endpointID string) (*subscribers.Subscriber, *subscribers.Endpoint, error) {
	rev, ok := d.index.Revision(subscriberID)
	if !ok {
		// The index may lag behind a subscriber created a moment ago.
		sub, _, err := d.store.Get(ctx, subscriberID)
		if errors.Is(err, subscribers.ErrNotFound) {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		return sub, sub.Endpoint(endpointID), nil
	}
	sub, err := d.store.Lookup(ctx, subscriberID, rev)
	if errors.Is(err, subscribers.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return sub, sub.Endpoint(endpointID), nil
}

// holderID names this process in the leases it takes: host, process id and
// a random part.
func holderID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}

// location returns the time zone name, cached; UTC for unknown names.
func (d *Dispatcher) location(name string) *time.Location {
	if name == "" {
		return time.UTC
	}
	d.locMu.RLock()
	loc, ok := d.locations[name]
	d.locMu.RUnlock()
	if ok {
		return loc
	}
	loc, err := subscribers.LoadLocation(name) // the zone rules validation applied
	if err != nil {
		loc = time.UTC
	}
	d.locMu.Lock()
	d.locations[name] = loc
	d.locMu.Unlock()
	return loc
}

// applyAction carries out what a permanent failure of a delivery to an
// endpoint asked for: disable the endpoint (and tell the subscriber by
// email), or suppress the address. addr is the endpoint's address, kept out
// of the reason.
func (d *Dispatcher) applyAction(ctx context.Context, subscriberID, endpointID, channel, addr string, logger *slog.Logger, action channels.Action, cause error) {
	ctx = context.WithoutCancel(ctx)
	switch action {
	case channels.DisableEndpoint:
		reason := channels.RedactAddress(oneLine(cause.Error()), addr)
		at := d.cfg.Now().UTC().Truncate(time.Second)
		sub, changed, err := d.store.DisableEndpoint(ctx, subscriberID, endpointID, reason, at)
		if err != nil {
			logger.Error("disabling the endpoint failed", "err", err)
			return
		}
		if changed {
			logger.Warn("endpoint disabled", "reason", reason)
			d.noticeDisabled(ctx, sub, endpointID, channel, reason, at)
		}
	case channels.SuppressAddress:
		sub, ep, err := d.resolve(ctx, subscriberID, endpointID)
		if err != nil || sub == nil || ep == nil {
			logger.Error("suppressing the address failed", "err", err)
			return
		}
		if err := d.supp.Add(ctx, channel, ep.Target(), cause.Error()); err != nil {
			logger.Error("suppressing the address failed", "err", err)
			return
		}
		logger.Warn("address suppressed", "reason", oneLine(cause.Error()))
	}
}

// noticeDisabled queues an email telling the subscriber that an endpoint was
// disabled, to its first active email endpoint, if it has one.
func (d *Dispatcher) noticeDisabled(ctx context.Context, sub *subscribers.Subscriber, endpointID, channel, reason string, at time.Time) {
	if sub == nil {
		return
	}
	for _, ep := range sub.Endpoints {
		if ep.Channel != channels.Email || !ep.Active() || ep.ID == endpointID {
			continue
		}
		eventID := fmt.Sprintf("%s:%s:%d", KindEndpointDisabled, endpointID, at.Unix())
		job := Job{
			ID: DeliveryID(eventID, sub.ID, ep.ID), Kind: KindEndpointDisabled, EventID: eventID,
			SubscriberID: sub.ID, EndpointID: ep.ID, Channel: channels.Email,
			Notice: &Notice{EndpointID: endpointID, Channel: channel, Reason: reason, At: at.Format(time.RFC3339)},
		}
		if err := d.enqueue(ctx, &job); err != nil {
			d.logger.Error("queueing the endpoint-disabled notice failed", "subscriber", sub.ID, "err", err)
		}
		return
	}
}

// enqueue publishes one job.
func (d *Dispatcher) enqueue(ctx context.Context, j *Job) error {
	data, err := encodeJob(j)
	if err != nil {
		return err
	}
	_, err = d.js.Publish(ctx, deliverySubject(j.Channel), data, jetstream.WithMsgID(j.ID))
	return err
}
