package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/channels/slack"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
)

// Names of Herald's streams, buckets and consumers.
const (
	StreamIncidents   = "INCIDENTS"
	StreamDeliveries  = "DELIVERIES"
	StreamDeliveryLog = "DELIVERY_LOG"
	StreamDeadLetters = "DEAD_LETTERS"

	BucketSubscribers  = "subscribers"
	BucketIncidents    = "incidents"
	BucketSuppressions = "suppressions"
	BucketSlackThreads = slack.ThreadsBucket
	BucketLeases       = "leases"
	BucketPacing       = "pacing"
	// BucketEndpointFailures holds the failing streaks of endpoints (see
	// endpointfailures.go).
	BucketEndpointFailures = "endpoint_failures"

	// ConsumerFanout is the first round's single fan-out consumer: kept,
	// when it exists, for updates stored before the INCIDENTS stream was
	// partitioned (see fanoutConsumer).
	ConsumerFanout = "fanout"
)

// fanoutPartitions is the number of fan-out partitions: the INCIDENTS
// stream stores an update of incident X under incidents.<p>.X, p a hash of
// X, and one consumer per partition hands out one update at a time. So
// updates of one incident stay in order, and up to this many updates of
// different incidents fan out at once, over all processes. It must not
// change while updates wait to be fanned out.
const fanoutPartitions = 8

// fanoutConsumer names the consumer of fan-out partition p.
func fanoutConsumer(p int) string { return "fanout-" + strconv.Itoa(p) }

// partitionFilter is the subject filter of fan-out partition p.
func partitionFilter(p int) string { return subjIncidents + strconv.Itoa(p) + ".*" }

// Subject prefixes.
const (
	subjIncidents   = "incidents."
	subjDeliveries  = "deliveries."
	subjParked      = "parked."
	subjDeliveryLog = "deliverylog."
	subjDeadLetters = "deadletter."
)

// IncidentSubject is the subject an update of incidentID is published on.
// The stream stores it under its partition's subject,
// incidents.<partition>.<incident_id>.
func IncidentSubject(incidentID string) string { return subjIncidents + incidentID }

// AllIncidentsFilter selects every update of the INCIDENTS stream, as
// stored (incidents.<partition>.<incident_id>, and the first round's
// incidents.<incident_id>).
const AllIncidentsFilter = subjIncidents + ">"

// incidentOfSubject returns the incident id of an INCIDENTS subject, as
// published (incidents.<id>) or as stored (incidents.<partition>.<id>).
func incidentOfSubject(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, subjIncidents)
	if !ok || rest == "" {
		return "", false
	}
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		rest = rest[i+1:]
	}
	return rest, rest != "" && !strings.Contains(rest, ".")
}

// deliverySubject is the subject of a channel's jobs.
func deliverySubject(channel string) string { return subjDeliveries + channel }

// deliveryConsumer names a channel's delivery consumer.
func deliveryConsumer(channel string) string { return "deliver-" + channel }

// parkedSubject is the subject of a channel's parked jobs: jobs waiting
// for a retry or a deferral, moved out of the delivery consumer so that
// they do not count against its MaxAckPending (a job waiting after a Nak
// still does), where enough of them would stop the channel.
func parkedSubject(channel string) string { return subjParked + channel }

// parkedConsumer names a channel's consumer of parked jobs.
func parkedConsumer(channel string) string { return "parked-" + channel }

// jobSubject maps the subject a message was consumed from to the one it is
// replayed on from the dead letters: a parked job's to its channel's
// delivery subject, a stored update's (incidents.<partition>.<id>) to the
// subject it was published on. Other subjects are returned as they are.
func jobSubject(subject string) string {
	if channel, ok := strings.CutPrefix(subject, subjParked); ok {
		return deliverySubject(channel)
	}
	if id, ok := incidentOfSubject(subject); ok {
		return IncidentSubject(id)
	}
	return subject
}

// noIncident stands for the incident in the log subject of a notice,
// which belongs to none.
const noIncident = "_"

// logSubject is the subject of a delivery's log records:
// deliverylog.<incident>.<subscriber>.<delivery>, so that both one
// incident's records and one subscriber's are read by subject filter.
func logSubject(incidentID, subscriberID, deliveryID string) string {
	if incidentID == "" {
		incidentID = noIncident
	}
	return subjDeliveryLog + incidentID + "." + subscriberID + "." + deliveryID
}

// legacyLogFilter selects the records of subscriberID written under the
// first round's subjects, deliverylog.<subscriber>.<delivery>.
func legacyLogFilter(subscriberID string) string {
	return subjDeliveryLog + subscriberID + ".*"
}

// Headers Herald sets on its messages.
const (
	hdrMsgID     = "Nats-Msg-Id"
	hdrRecheck   = "Herald-Recheck"
	hdrReplay    = "Herald-Replay"
	hdrReason    = "Herald-Reason"
	hdrOrigSubj  = "Herald-Original-Subject"
	hdrFailedAt  = "Herald-Failed-At"
	hdrAttempts  = "Herald-Attempts"
	hdrRef       = "Herald-Ref"
	hdrOrigMsgID = "Herald-Original-Msg-Id"
	// hdrDue (Unix milliseconds) and hdrAttempt (attempts made so far)
	// travel with a parked job.
	hdrDue     = "Herald-Due"
	hdrAttempt = "Herald-Attempt"
)

// Topology creates or updates, idempotently, every stream, bucket and
// consumer Herald uses, and returns handles on them.
type Topology struct {
	Incidents    jetstream.Stream
	Deliveries   jetstream.Stream
	DeliveryLog  jetstream.Stream
	DeadLetters  jetstream.Stream
	Subscribers  jetstream.KeyValue
	Snapshots    jetstream.KeyValue
	Suppressions jetstream.KeyValue
	// SlackThreads maps (incident, Slack channel) to the living parent
	// message and its replies, so that any process threads correctly.
	SlackThreads jetstream.KeyValue
	// Leases holds, per delivery id, the lease of the process handling a
	// copy of a delivery seen before (see lease.go).
	Leases jetstream.KeyValue
	// Pacing holds the next free send time of each globally paced
	// destination and rate-limited provider (see pacing.go).
	Pacing jetstream.KeyValue
	// EndpointFailures holds, per endpoint whose every attempt failed
	// since a time, that time (see endpointfailures.go).
	EndpointFailures jetstream.KeyValue
	// Recalls holds a marker per recalled update (see recall.go).
	Recalls jetstream.KeyValue
}

// Setup creates or updates the streams, buckets and consumers to match cfg;
// it is safe to run at every start and from several processes. While
// JetStream is still starting (leaders elected, streams recovered after a
// restart, a new cluster's nodes seen online) it waits and tries again,
// until ctx ends.
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config) (t *Topology, err error) {
	err = retryTransient(ctx, func() (err error) {
		t, err = ensure(ctx, js, cfg, true)
		return err
	})
	return t, err
}

// Attach opens the streams, buckets and consumers, creating those that are
// missing but leaving existing ones as they are: CLI commands use it so that
// their own (often default) configuration never rewrites the server's.
func Attach(ctx context.Context, js jetstream.JetStream, cfg Config) (t *Topology, err error) {
	err = retryTransient(ctx, func() (err error) {
		t, err = ensure(ctx, js, cfg, false)
		return err
	})
	return t, err
}

func ensure(ctx context.Context, js jetstream.JetStream, cfg Config, update bool) (*Topology, error) {
	cfg = cfg.WithDefaults()
	var t Topology
	var err error
	streams := []struct {
		dst *jetstream.Stream
		cfg jetstream.StreamConfig
	}{
		{&t.Incidents, jetstream.StreamConfig{
			Name:        StreamIncidents,
			Description: "Incident updates, as published (subject incidents.<incident_id>)",
			Subjects:    []string{subjIncidents + "*"},
			// Stored as incidents.<partition>.<incident_id>: the fan-out
			// partition is part of the subject (see fanoutPartitions).
			SubjectTransform: &jetstream.SubjectTransformConfig{
				Source:      subjIncidents + "*",
				Destination: subjIncidents + "{{partition(" + strconv.Itoa(fanoutPartitions) + ",1)}}.{{wildcard(1)}}",
			},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      cfg.IncidentRetention,
			MaxMsgSize:  int32(cfg.MaxEventBytes + 4096),
			Duplicates:  cfg.DuplicateWindow,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			AllowDirect: true,
			Discard:     jetstream.DiscardOld,
		}},
		{&t.Deliveries, jetstream.StreamConfig{
			Name:        StreamDeliveries,
			Description: "Notification jobs: batches of an update's targets on one channel (subject deliveries.<channel>), single-target parked jobs (parked.<channel>)",
			Subjects:    []string{subjDeliveries + "*", subjParked + "*"},
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  cfg.DuplicateWindow,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			AllowDirect: true,
			Discard:     jetstream.DiscardOld,
		}},
		{&t.DeliveryLog, jetstream.StreamConfig{
			Name:        StreamDeliveryLog,
			Description: "One record per delivery attempt and outcome (subject deliverylog.<incident>.<subscriber>.<delivery>)",
			// deliverylog.*.* holds the first round's records, still read
			// by a subscriber's history.
			Subjects:    []string{subjDeliveryLog + "*.*.*", subjDeliveryLog + "*.*"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      cfg.DeliveryLogRetention,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			AllowDirect: true,
			Discard:     jetstream.DiscardOld,
		}},
		{&t.DeadLetters, jetstream.StreamConfig{
			Name:        StreamDeadLetters,
			Description: "Bad events and undeliverable jobs, with the reason (subject deadletter.<origin>...)",
			Subjects:    []string{subjDeadLetters + ">"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      cfg.DeadLetterRetention,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			AllowDirect: true,
			Discard:     jetstream.DiscardOld,
		}},
	}
	for _, s := range streams {
		if update {
			*s.dst, err = js.CreateOrUpdateStream(ctx, s.cfg)
		} else if *s.dst, err = js.Stream(ctx, s.cfg.Name); errors.Is(err, jetstream.ErrStreamNotFound) {
			*s.dst, err = js.CreateStream(ctx, s.cfg)
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", s.cfg.Name, err)
		}
	}
	slackThreads := slack.ThreadsBucketConfig()
	buckets := []struct {
		dst *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		{&t.Subscribers, jetstream.KeyValueConfig{Bucket: BucketSubscribers, Description: "Subscribers by id", History: 1, MaxValueSize: 256 << 10, Storage: jetstream.FileStorage}},
		{&t.Snapshots, jetstream.KeyValueConfig{Bucket: BucketIncidents, Description: "Incident snapshots by incident id", History: 1, Storage: jetstream.FileStorage}},
		{&t.SlackThreads, slackThreads},
		{&t.Suppressions, jetstream.KeyValueConfig{Bucket: BucketSuppressions, Description: "Suppressed addresses (bounces, STOP) by channel and address hash", History: 1, TTL: cfg.SuppressionTTL, LimitMarkerTTL: time.Hour, Storage: jetstream.FileStorage}},
		// Leases expire by themselves (per-key TTL) when their process
		// dies; released ones leave a marker that lives a second.
		{&t.Leases, jetstream.KeyValueConfig{Bucket: BucketLeases, Description: "Leases of deliveries in hand, by delivery id", History: 1, LimitMarkerTTL: time.Second, Storage: jetstream.FileStorage}},
		{&t.Pacing, jetstream.KeyValueConfig{Bucket: BucketPacing, Description: "Next free send time of globally paced destinations and providers", History: 1, TTL: 24 * time.Hour, Storage: jetstream.MemoryStorage}},
		{&t.EndpointFailures, jetstream.KeyValueConfig{Bucket: BucketEndpointFailures, Description: "Endpoints whose every attempt failed since a time, by channel.subscriber.endpoint", History: 1, TTL: endpointFailureTTL, Storage: jetstream.FileStorage}},
		{&t.Recalls, recallsBucketConfig()},
	}
	for _, b := range buckets {
		b.cfg.Replicas = cfg.Replicas // every bucket, Slack's included
		if update {
			*b.dst, err = js.CreateOrUpdateKeyValue(ctx, b.cfg)
		} else if *b.dst, err = js.KeyValue(ctx, b.cfg.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
			*b.dst, err = js.CreateKeyValue(ctx, b.cfg)
		}
		if err != nil {
			return nil, fmt.Errorf("bucket %s: %w", b.cfg.Bucket, err)
		}
	}
	consumer := func(s jetstream.Stream, cc jetstream.ConsumerConfig) error {
		var err error
		if update {
			_, err = s.CreateOrUpdateConsumer(ctx, cc)
		} else if _, err = s.Consumer(ctx, cc.Durable); errors.Is(err, jetstream.ErrConsumerNotFound) {
			_, err = s.CreateConsumer(ctx, cc)
		}
		if err != nil {
			return fmt.Errorf("consumer %s: %w", cc.Durable, err)
		}
		return nil
	}
	for p := range fanoutPartitions {
		if err := consumer(t.Incidents, jetstream.ConsumerConfig{
			Durable:       fanoutConsumer(p),
			Description:   "Fans each incident update of partition " + strconv.Itoa(p) + " out to its audience",
			FilterSubject: partitionFilter(p),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.FanoutAckWait,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			MaxAckPending: 1, // one update at a time per partition: updates of an incident stay in order
			MaxDeliver:    -1,
			Replicas:      cfg.Replicas,
		}); err != nil {
			return nil, err
		}
	}
	// The first round's consumer took every subject; it now takes only
	// the updates stored before the stream was partitioned, if any.
	if c, err := t.Incidents.Consumer(ctx, ConsumerFanout); err == nil && update && c.CachedInfo().Config.FilterSubject != subjIncidents+"*" {
		cc := c.CachedInfo().Config
		cc.FilterSubject, cc.FilterSubjects = subjIncidents+"*", nil
		if _, err := t.Incidents.UpdateConsumer(ctx, cc); err != nil {
			return nil, fmt.Errorf("consumer %s: %w", ConsumerFanout, err)
		}
	} else if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("consumer %s: %w", ConsumerFanout, err)
	}
	for _, name := range channels.Names() {
		cc := cfg.Channels[name]
		if err := consumer(t.Deliveries, jetstream.ConsumerConfig{
			Durable:       deliveryConsumer(name),
			Description:   "Delivers " + name + " notifications",
			FilterSubject: deliverySubject(name),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cc.AckWait,
			// No server-side limit: a job past it would stay stored and
			// never be delivered again, unless some process caught the
			// max-deliveries advisory at that very moment. The delivery
			// loop counts attempts (sends) itself; redeliveries use none.
			MaxDeliver:    -1,
			MaxAckPending: cc.MaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			Replicas:      cfg.Replicas,
		}); err != nil {
			return nil, err
		}
		if err := consumer(t.Deliveries, jetstream.ConsumerConfig{
			Durable:       parkedConsumer(name),
			Description:   "Brings " + name + " jobs back when their retry or deferral is due",
			FilterSubject: parkedSubject(name),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cc.AckWait,
			MaxDeliver:    -1, // as above

			MaxAckPending: cc.MaxParked,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			Replicas:      cfg.Replicas,
		}); err != nil {
			return nil, err
		}
	}
	return &t, nil
}

// retryTransient retries fn while JetStream is still electing leaders,
// recovering after a restart or forming a cluster (a node not yet seen
// online: replicas not placeable, for up to placementWait).
func retryTransient(ctx context.Context, fn func() error) error {
	return retryFor(ctx, placementWait, fn)
}

// retryFor is retryTransient waiting up to placement for a stream's
// replicas to be placed.
func retryFor(ctx context.Context, placement time.Duration, fn func() error) error {
	delay := 50 * time.Millisecond
	var unplaced time.Time // when placement was first refused
	for {
		err := fn()
		switch {
		case err == nil:
			return nil
		case transient(err):
		case unplaceable(err):
			// A node of a cluster that just formed is not yet seen as
			// online; the same refusal is for good when the replicas
			// outnumber the nodes.
			if unplaced.IsZero() {
				unplaced = time.Now()
			} else if time.Since(unplaced) > placement {
				return err
			}
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// placementWait bounds how long Setup waits for a stream's replicas to
// find their nodes ("no suitable peers for placement") before it reports
// the refusal.
const placementWait = 30 * time.Second

// JetStream's cluster errors (nats-server's error codes): results still
// incomplete, the system temporarily unavailable, no leader to take the
// request; and no peers to place a stream's replicas on.
const (
	jsErrClusterIncomplete = 10004
	jsErrClusterNoPeers    = 10005
	jsErrClusterNotAvail   = 10008
	jsErrClusterNotLeader  = 10009
)

func transient(err error) bool {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jsErrClusterIncomplete, jsErrClusterNotAvail, jsErrClusterNotLeader:
		return true
	}
	return false
}

// unplaceable reports JetStream's refusal to place a stream's replicas.
func unplaceable(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrClusterNoPeers
}

// readerIdle is how long the server keeps a reader's consumer that was not
// deleted (its process died while reading).
const readerIdle = 30 * time.Second

// openReader opens an ordered consumer on stream for one read, and returns
// it with its close, which deletes it. The server limits consumers per
// stream (1 000 by default), and an ordered consumer left behind lives on
// for its inactive threshold: API calls and redelivery checks that read
// the log must not leave theirs.
func openReader(ctx context.Context, stream jetstream.Stream, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, func(), error) {
	cfg.InactiveThreshold = readerIdle
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return cons, func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = stream.DeleteConsumer(dctx, info.Name)
		}
	}, nil
}

// readerWait bounds the wait for the first message of a read. A reader
// created a moment ago on a clustered stream may take a little while to
// deliver; a fetch that does not wait could stop before it started.
const readerWait = 2 * time.Second

// readOrdered reads the messages of a reader (see openReader) from its
// start until none is pending, handing each to fn with its metadata; fn
// returns false to stop. It waits up to readerWait for the first message
// when there may be none at all. A reader created a moment ago on a
// clustered stream may not answer its first pulls yet (no responders): they
// are tried again until readerWait is over.
func readOrdered(cons jetstream.Consumer, fn func(jetstream.Msg, *jetstream.MsgMetadata) bool) error {
	deadline := time.Now().Add(readerWait)
	read := 0
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(readerWait))
		if err != nil {
			return err
		}
		n := 0
		pending := uint64(1)
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			if pending = md.NumPending; !fn(msg, md) {
				return nil
			}
			if pending == 0 {
				break // all read: no need to wait for the fetch to expire
			}
		}
		read += n
		if n > 0 && pending == 0 {
			return nil
		}
		err = batch.Error()
		switch {
		case n > 0:
			continue
		case err == nil || errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout):
			if read > 0 || !time.Now().Before(deadline) {
				return nil
			}
		case time.Now().Before(deadline):
			time.Sleep(50 * time.Millisecond) // not ready yet
		default:
			return err
		}
	}
}
