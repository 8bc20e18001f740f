package dispatcher

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/channels"
)

// metrics are the dispatcher's Prometheus instruments.
type metrics struct {
	events        *prometheus.CounterVec   // by result: fanned_out, duplicate, quiet, late, dead_lettered
	jobs          *prometheus.CounterVec   // by channel: jobs (batches) published
	targets       *prometheus.CounterVec   // by channel: targets published in batches
	infraErrors   *prometheus.CounterVec   // by component: failures of Herald's own infrastructure
	recordsLost   *prometheus.CounterVec   // by channel: records that could not be written (must stay 0)
	fanoutSeconds prometheus.Histogram     // one fan-out
	outcomes      *prometheus.CounterVec   // by channel, outcome
	sendSeconds   *prometheus.HistogramVec // by channel
	lagSeconds    *prometheus.HistogramVec // by channel: from update accepted to first send attempt
	inflight      *prometheus.GaugeVec     // by channel
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "events_total",
			Help: "Incident updates consumed by the fan-out, by result.",
		}, []string{"result"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "jobs_published_total",
			Help: "Delivery jobs (batches of targets) published by the fan-out, by channel.",
		}, []string{"channel"}),
		targets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "targets_published_total",
			Help: "Targets (one per update and endpoint) published by the fan-out in batch jobs, by channel.",
		}, []string{"channel"}),
		infraErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "infrastructure_errors_total",
			Help: "Failures of Herald's own infrastructure (JetStream streams and buckets), by component; the work waits and tries again, without using a delivery attempt.",
		}, []string{"component"}),
		recordsLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "delivery_records_lost_total",
			Help: "Delivery-log records that could not be written before Herald stopped (their job was left unacknowledged); must stay 0.",
		}, []string{"channel"}),
		fanoutSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Name: "fanout_duration_seconds",
			Help:    "Time to fan one update out, from receipt to ack.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "delivery_outcomes_total",
			Help: "Delivery attempts and skips, by channel and outcome.",
		}, []string{"channel", "outcome"}),
		sendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "herald", Name: "send_duration_seconds",
			Help:    "Time the provider took to answer a send.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 11),
		}, []string{"channel"}),
		lagSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "herald", Name: "delivery_lag_seconds",
			Help:    "Time from an update's acceptance to the end of its first send attempt.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 12),
		}, []string{"channel"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "herald", Name: "sends_in_flight",
			Help: "Sends in progress, by channel.",
		}, []string{"channel"}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.jobs, m.targets, m.infraErrors, m.recordsLost, m.fanoutSeconds, m.outcomes, m.sendSeconds, m.lagSeconds, m.inflight)
	}
	return m
}

// channelMetrics are one channel's instruments, resolved once: the delivery
// loop updates them for every attempt.
type channelMetrics struct {
	channel   string
	vec       *prometheus.CounterVec
	outcomes  map[Outcome]prometheus.Counter
	duplicate prometheus.Counter
	inHand    prometheus.Counter // copies turned away: another copy of the delivery is in hand
	lost      prometheus.Counter
	inflight  prometheus.Gauge
	send, lag prometheus.Observer
}

// forChannel resolves the instruments of channel.
func (m *metrics) forChannel(channel string) *channelMetrics {
	cm := &channelMetrics{
		channel:   channel,
		vec:       m.outcomes,
		outcomes:  map[Outcome]prometheus.Counter{},
		duplicate: m.outcomes.WithLabelValues(channel, "duplicate"),
		inHand:    m.outcomes.WithLabelValues(channel, "copy_in_hand"),
		lost:      m.recordsLost.WithLabelValues(channel),
		inflight:  m.inflight.WithLabelValues(channel),
		send:      m.sendSeconds.WithLabelValues(channel),
		lag:       m.lagSeconds.WithLabelValues(channel),
	}
	for _, o := range []Outcome{Delivered, Outboxed, Retrying, Failed, DeadLettered, Deferred, Suppressed, Superseded, Unsubscribed, Disabled, Receipt} {
		cm.outcomes[o] = m.outcomes.WithLabelValues(channel, string(o))
	}
	return cm
}

// outcome counts one record of outcome o.
func (cm *channelMetrics) outcome(o Outcome) prometheus.Counter {
	if c, ok := cm.outcomes[o]; ok {
		return c
	}
	return cm.vec.WithLabelValues(cm.channel, string(o))
}

// backlog reports, at each scrape, the jobs waiting per channel, read from
// the consumers' state on the server (so it covers every Herald process):
// "waiting" not yet handed to a process, "in_hand" held by one (sending or
// waiting for its destination's turn), "parked" waiting for a retry or a
// deferral.
type backlog struct {
	stream jetstream.Stream
	desc   *prometheus.Desc
}

func newBacklog(stream jetstream.Stream) *backlog {
	return &backlog{stream: stream, desc: prometheus.NewDesc("herald_jobs_waiting",
		"Delivery jobs not yet done, by channel and queue (waiting, in_hand, parked), over all processes.",
		[]string{"channel", "queue"}, nil)}
}

// Describe implements prometheus.Collector.
func (b *backlog) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

// Collect implements prometheus.Collector. A consumer whose state cannot be
// read within the scrape's budget is left out.
func (b *backlog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	gauge := func(v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, float64(v), labels...)
	}
	byName := map[string]*jetstream.ConsumerInfo{}
	list := b.stream.ListConsumers(ctx) // one request for all of them
	for info := range list.Info() {
		byName[info.Name] = info
	}
	for _, name := range channels.Names() {
		if info := byName[deliveryConsumer(name)]; info != nil {
			gauge(info.NumPending, name, "waiting")
			gauge(uint64(info.NumAckPending), name, "in_hand")
		}
		if info := byName[parkedConsumer(name)]; info != nil {
			gauge(info.NumPending+uint64(info.NumAckPending), name, "parked")
		}
	}
}
