package dispatcher

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Components of Herald's own infrastructure whose trouble is reported by
// health: JetStream streams and buckets the engine reads and writes.
const (
	componentDeliveryLog = "delivery_log"
	componentDeliveries  = "deliveries"
	componentDeadLetters = "dead_letters"
	componentLeases      = "leases"
	componentPacing      = "pacing"
	componentSnapshots   = "incident_snapshots"
	componentSubscribers = "subscribers"
	componentIncidents   = "incidents"
	componentSMSCaps     = "sms_caps"
)

// degradedFor is how long a failure of a component keeps Herald degraded
// when nothing succeeded on it since.
const degradedFor = 30 * time.Second

// health tracks the trouble of Herald's own infrastructure. Such trouble
// never counts as a delivery attempt and never dead-letters a notification:
// the work backs off and tries again, while health raises a metric and
// turns readiness degraded until the component works again.
type health struct {
	now    func() time.Time
	errors *prometheus.CounterVec

	// failing is set while any component is failing, so that ok costs a
	// load on the hot path.
	failing atomic.Bool
	mu      sync.Mutex
	state   map[string]*componentTrouble
}

// componentTrouble is what health knows of a failing component.
type componentTrouble struct {
	Component string    `json:"component"`
	Since     time.Time `json:"since"`
	Last      time.Time `json:"last"`
	Failures  int       `json:"failures"`
	Error     string    `json:"error"`
}

func newHealth(now func() time.Time, errors *prometheus.CounterVec) *health {
	return &health{now: now, errors: errors, state: map[string]*componentTrouble{}}
}

// fail records a failure of component.
func (h *health) fail(component string, err error) {
	h.errors.WithLabelValues(component).Inc()
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.state[component]
	if t == nil {
		t = &componentTrouble{Component: component, Since: now}
		h.state[component] = t
	}
	t.Last, t.Failures = now, t.Failures+1
	if err != nil {
		t.Error = oneLine(err.Error())
	}
	h.failing.Store(true)
}

// ok records that component worked.
func (h *health) ok(component string) {
	if !h.failing.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.state, component)
	h.failing.Store(len(h.state) > 0)
}

// troubles returns the components that failed within degradedFor and have
// not worked since, by name.
func (h *health) troubles() []componentTrouble {
	if !h.failing.Load() {
		return nil
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []componentTrouble
	for _, t := range h.state {
		if now.Sub(t.Last) <= degradedFor {
			out = append(out, *t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Component < out[j].Component })
	return out
}

// transientDelay is the wait before trying again, for the n-th time, work
// that failed on Herald's own infrastructure: 1 s, 2 s, 4 s… up to a
// minute, without limit on the number of tries.
func transientDelay(n int) time.Duration {
	n = max(n, 1)
	d := time.Second
	for i := 1; i < n && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}
