package dispatcher

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
)

// Kinds of jobs.
const (
	// KindUpdate notifies an endpoint of an incident update.
	KindUpdate = "incident.update"
	// KindEndpointDisabled tells a subscriber that one of its endpoints
	// was disabled.
	KindEndpointDisabled = "endpoint.disabled"
)

// Job is one message of the DELIVERIES stream: notifications of one update
// (or one service notice) on one channel. A batch job, written by the
// fan-out, carries many targets in Targets, each with its own delivery id
// ([DeliveryID] of the event, subscriber and endpoint); a single job, a
// parked retry or a notice, carries one target in SubscriberID and
// EndpointID, and its delivery id in ID. Jobs reference the update by its
// INCIDENTS stream sequence rather than carrying it, so they stay small
// however large the update.
type Job struct {
	// ID is the job's Nats-Msg-Id: the delivery id of a single job (also
	// its webhook-id), the batch id of a batch job ([BatchID]).
	ID string `json:"id"`
	// Kind is [KindUpdate] or a notice kind.
	Kind string `json:"kind"`
	// EventID, IncidentID and Sequence identify the update.
	EventID    string `json:"event"`
	IncidentID string `json:"incident,omitempty"`
	Sequence   int64  `json:"seq,omitempty"`
	// StreamSeq is the update's sequence in the INCIDENTS stream.
	StreamSeq uint64 `json:"eseq,omitempty"`
	// Priority is the update's effective priority (unrated updates get
	// the configured one), for quiet hours.
	Priority incident.Priority `json:"prio,omitempty"`
	// SubscriberID and EndpointID identify the endpoint of a single job.
	SubscriberID string `json:"sub,omitempty"`
	EndpointID   string `json:"ep,omitempty"`
	// Channel is the channel of every target.
	Channel string `json:"ch"`
	// Notice details a service notice (KindEndpointDisabled).
	Notice *Notice `json:"notice,omitempty"`
	// To is the recipient and content of a notice addressed directly
	// (KindConfirm, KindFollowConfirm, KindManageLink, KindCode).
	To *Direct `json:"to,omitempty"`
	// Targets are the endpoints of a batch job.
	Targets []Target `json:"targets,omitempty"`
	// Reminder details a maintenance reminder (KindReminder; see
	// maintenance.go).
	Reminder *Reminder `json:"reminder,omitempty"`
}

// Target is one endpoint of a batch job.
type Target struct {
	SubscriberID string `json:"sub"`
	EndpointID   string `json:"ep"`
}

// Notice is the content of a service notice job.
type Notice struct {
	// EndpointID and Channel name the endpoint the notice is about.
	EndpointID string `json:"endpoint"`
	Channel    string `json:"channel"`
	// Reason says why, secret-free.
	Reason string `json:"reason"`
	// At is when it happened, RFC 3339.
	At string `json:"at"`
}

// batch reports whether j carries its targets in Targets.
func (j *Job) batch() bool { return len(j.Targets) > 0 }

// targets returns the job's endpoints: Targets for a batch, else its one
// endpoint.
func (j *Job) targets() []Target {
	if j.batch() {
		return j.Targets
	}
	return []Target{{SubscriberID: j.SubscriberID, EndpointID: j.EndpointID}}
}

// deliveryID returns the delivery id of target t of j.
func (j *Job) deliveryID(t Target) string {
	if !j.batch() {
		return j.ID
	}
	return DeliveryID(j.EventID, t.SubscriberID, t.EndpointID)
}

// single returns the single job that carries target t of j alone: a
// target that must wait leaves its batch as one.
func (j *Job) single(t Target) *Job {
	if !j.batch() {
		return j
	}
	s := *j
	s.ID, s.SubscriberID, s.EndpointID, s.Targets = j.deliveryID(t), t.SubscriberID, t.EndpointID, nil
	return &s
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// hashID returns prefix and 26 lower-case base32 characters of SHA-256 over
// parts, each followed by a zero byte but the last.
func hashID(prefix string, parts ...string) string {
	h := sha256.New()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	out := make([]byte, len(prefix)+26)
	copy(out, prefix)
	idEncoding.Encode(out[len(prefix):], sum[:16])
	for i := len(prefix); i < len(out); i++ {
		if c := out[i]; c >= 'A' && c <= 'Z' {
			out[i] = c + ('a' - 'A')
		}
	}
	return string(out)
}

// DeliveryID derives the stable id of the notification of eventID to an
// endpoint: "dlv_" and 26 base32 characters of SHA-256 over the three ids.
// The same update reaching the same endpoint always gets the same id, which
// is what makes re-publishing and redelivery harmless.
func DeliveryID(eventID, subscriberID, endpointID string) string {
	return hashID("dlv_", eventID, subscriberID, endpointID)
}

// BatchID derives the id of batch number bucket of an update on a channel
// ("bat_" and 26 base32 characters). A resumed fan-out publishes the same
// batches under the same ids, so that JetStream drops the copies inside
// the duplicate window.
func BatchID(eventID, channel string, bucket int) string {
	return hashID("bat_", eventID, channel, strconv.Itoa(bucket))
}

// bucketOf returns the batch of subscriberID among n batches: membership
// depends only on the subscriber id and n, which the incident snapshot
// fixes at the first fan-out of an update.
func bucketOf(subscriberID string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(subscriberID))
	return int(h.Sum32() % uint32(n))
}

// jobEncoder appends the JSON of update jobs fast: the update's part is
// encoded once per fan-out, the per-target part appended without escaping
// (subscriber and endpoint ids, channel names and job ids use a restricted
// alphabet; see subscribers' validation).
type jobEncoder struct {
	prefix []byte // {"kind":..,"event":..,"incident":..,"seq":..,"eseq":..,"prio":..
}

func newJobEncoder(ev *incident.Event, streamSeq uint64, prio incident.Priority) (*jobEncoder, error) {
	eventID, err := json.Marshal(ev.ID)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 160)
	b = append(b, `{"kind":"`+KindUpdate+`","event":`...)
	b = append(b, eventID...)
	b = append(b, `,"incident":"`...)
	b = append(b, ev.IncidentID...) // validated alphabet
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, ev.Sequence, 10)
	b = append(b, `,"eseq":`...)
	b = strconv.AppendUint(b, streamSeq, 10)
	b = append(b, `,"prio":"`...)
	b = append(b, prio...)
	b = append(b, '"')
	return &jobEncoder{prefix: b}, nil
}

// encode appends the single job of one target to dst.
func (e *jobEncoder) encode(dst []byte, id string, t subscribers.Target) []byte {
	dst = append(dst, e.prefix...)
	dst = append(dst, `,"id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","sub":"`...)
	dst = append(dst, t.SubscriberID...)
	dst = append(dst, `","ep":"`...)
	dst = append(dst, t.EndpointID...)
	dst = append(dst, `","ch":"`...)
	dst = append(dst, t.Channel...)
	dst = append(dst, `"}`...)
	return dst
}

// encodeBatch appends the batch job id of channel, whose targets are
// targets[i] for each i of members, to dst.
func (e *jobEncoder) encodeBatch(dst []byte, id, channel string, targets []subscribers.Target, members []int32) []byte {
	dst = append(dst, e.prefix...)
	dst = append(dst, `,"id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","ch":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","targets":[`...)
	for n, i := range members {
		if n > 0 {
			dst = append(dst, ',')
		}
		t := &targets[i]
		dst = append(dst, `{"sub":"`...)
		dst = append(dst, t.SubscriberID...)
		dst = append(dst, `","ep":"`...)
		dst = append(dst, t.EndpointID...)
		dst = append(dst, `"}`...)
	}
	return append(dst, `]}`...)
}

// encodeJob returns j's JSON: the encoder's form for update jobs (so that
// they take the fast path when read back), encoding/json for the others.
func encodeJob(j *Job) ([]byte, error) {
	if j.Kind != KindUpdate || j.Notice != nil || !plainJSON(j.EventID) {
		return json.Marshal(j)
	}
	enc, err := newJobEncoder(&incident.Event{ID: j.EventID, IncidentID: j.IncidentID, Sequence: j.Sequence}, j.StreamSeq, j.Priority)
	if err != nil {
		return nil, err
	}
	if !j.batch() {
		return enc.encode(make([]byte, 0, 256), j.ID, subscribers.Target{SubscriberID: j.SubscriberID, EndpointID: j.EndpointID, Channel: j.Channel}), nil
	}
	targets := make([]subscribers.Target, len(j.Targets))
	members := make([]int32, len(j.Targets))
	for i, t := range j.Targets {
		targets[i] = subscribers.Target{SubscriberID: t.SubscriberID, EndpointID: t.EndpointID}
		members[i] = int32(i)
	}
	return enc.encodeBatch(make([]byte, 0, 128+48*len(targets)), j.ID, j.Channel, targets, members), nil
}

// plainJSON reports whether s is printable ASCII with nothing
// encoding/json escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// decodeJob parses and checks a job. Update jobs in the exact form
// jobEncoder writes take a fast path; anything else goes through
// encoding/json, with the same result.
func decodeJob(data []byte) (*Job, error) {
	j, ok := scanUpdateJob(data)
	if !ok {
		j = &Job{}
		if err := json.Unmarshal(data, j); err != nil {
			return nil, fmt.Errorf("job: %w", err)
		}
	}
	switch {
	case j.ID == "" || j.Channel == "" || j.EventID == "":
		return nil, errors.New("job: missing id, event or channel")
	case !j.batch() && (j.SubscriberID == "" || j.EndpointID == ""):
		return nil, errors.New("job: missing id, event, subscriber, endpoint or channel")
	case j.batch() && (j.SubscriberID != "" || j.EndpointID != ""):
		return nil, errors.New("job: both a target list and a single target")
	case j.Kind == KindUpdate && (j.StreamSeq == 0 || j.IncidentID == ""):
		return nil, errors.New("job: update job without its update reference")
	case j.Kind == KindEndpointDisabled && j.Notice == nil:
		return nil, errors.New("job: notice job without its notice")
	case directKind(j.Kind) && (j.To == nil || j.batch()):
		return nil, errors.New("job: notice job without its recipient")
	case j.Kind == KindReminder && (j.Reminder == nil || j.Reminder.Of == "" || j.Reminder.Lead <= 0 || !j.Reminder.End.After(j.Reminder.Start) ||
		j.StreamSeq == 0 || j.IncidentID == ""):
		return nil, errors.New("job: reminder job without its maintenance")
	case j.Kind != KindUpdate && j.Kind != KindEndpointDisabled && j.Kind != KindReminder && !directKind(j.Kind):
		return nil, fmt.Errorf("job: unknown kind %q", j.Kind)
	}
	for _, t := range j.Targets {
		if !subscribers.ValidID(t.SubscriberID) || !subscribers.ValidID(t.EndpointID) {
			return nil, fmt.Errorf("job: invalid target %q/%q", t.SubscriberID, t.EndpointID)
		}
	}
	return j, nil
}

// scanUpdateJob parses an update job written by jobEncoder, single or
// batch: its keys in that order, strings of printable ASCII without
// escapes, integers in canonical form. It reports false for anything else,
// which encoding/json then decides. All strings share the data's one
// conversion.
func scanUpdateJob(data []byte) (*Job, bool) {
	j := &Job{}
	s := jobScanner{s: string(data)}
	ok := s.lit(`{"kind":`) && s.str(&j.Kind) &&
		s.lit(`,"event":`) && s.str(&j.EventID) &&
		s.lit(`,"incident":`) && s.str(&j.IncidentID) &&
		s.lit(`,"seq":`) && s.int(&j.Sequence) &&
		s.lit(`,"eseq":`) && s.uint(&j.StreamSeq) &&
		s.lit(`,"prio":`) && s.str((*string)(&j.Priority)) &&
		s.lit(`,"id":`) && s.str(&j.ID)
	if !ok {
		return nil, false
	}
	if s.lit(`,"ch":`) { // a batch
		if !s.str(&j.Channel) || !s.lit(`,"targets":[`) {
			return nil, false
		}
		for {
			var t Target
			if !s.lit(`{"sub":`) || !s.str(&t.SubscriberID) || !s.lit(`,"ep":`) || !s.str(&t.EndpointID) || !s.lit(`}`) {
				return nil, false
			}
			j.Targets = append(j.Targets, t)
			if s.lit(`,`) {
				continue
			}
			return j, s.lit(`]}`) && s.s == ""
		}
	}
	ok = s.lit(`,"sub":`) && s.str(&j.SubscriberID) &&
		s.lit(`,"ep":`) && s.str(&j.EndpointID) &&
		s.lit(`,"ch":`) && s.str(&j.Channel) &&
		s.lit(`}`) && s.s == ""
	return j, ok
}

// jobScanner consumes s from the front.
type jobScanner struct{ s string }

func (p *jobScanner) lit(l string) bool {
	if !strings.HasPrefix(p.s, l) {
		return false
	}
	p.s = p.s[len(l):]
	return true
}

// str reads a JSON string made of printable ASCII other than `"` and `\`.
func (p *jobScanner) str(dst *string) bool {
	if p.s == "" || p.s[0] != '"' {
		return false
	}
	for i := 1; i < len(p.s); i++ {
		switch c := p.s[i]; {
		case c == '"':
			*dst, p.s = p.s[1:i], p.s[i+1:]
			return true
		case c < 0x20 || c > 0x7e || c == '\\':
			return false
		}
	}
	return false
}

// digits returns the leading run of digits if it is a canonical JSON
// integer (no leading zero).
func (p *jobScanner) digits() (string, bool) {
	n := 0
	for n < len(p.s) && p.s[n] >= '0' && p.s[n] <= '9' {
		n++
	}
	if n == 0 || (n > 1 && p.s[0] == '0') {
		return "", false
	}
	d := p.s[:n]
	p.s = p.s[n:]
	return d, true
}

func (p *jobScanner) int(dst *int64) bool {
	d, ok := p.digits()
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(d, 10, 64)
	*dst = v
	return err == nil
}

func (p *jobScanner) uint(dst *uint64) bool {
	d, ok := p.digits()
	if !ok {
		return false
	}
	v, err := strconv.ParseUint(d, 10, 64)
	*dst = v
	return err == nil
}
