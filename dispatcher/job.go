package dispatcher

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
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

// Job is one notification to send: an update (or a service notice) for one
// endpoint. It references the update by its INCIDENTS stream sequence rather
// than carrying it, so jobs stay small however large the update.
type Job struct {
	// ID is the delivery id: [DeliveryID] of the event, subscriber and
	// endpoint. It is the job's Nats-Msg-Id and the webhook-id.
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
	// SubscriberID, EndpointID and Channel identify the endpoint.
	SubscriberID string `json:"sub"`
	EndpointID   string `json:"ep"`
	Channel      string `json:"ch"`
	// Notice details a service notice (KindEndpointDisabled).
	Notice *Notice `json:"notice,omitempty"`
	// To is the recipient and content of a notice addressed directly
	// (KindConfirm, KindFollowConfirm, KindManageLink, KindCode).
	To *Direct `json:"to,omitempty"`
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

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// DeliveryID derives the stable id of the notification of eventID to an
// endpoint: "dlv_" and 26 base32 characters of SHA-256 over the three ids.
// The same update reaching the same endpoint always gets the same id, which
// is what makes re-publishing and redelivery harmless.
func DeliveryID(eventID, subscriberID, endpointID string) string {
	h := sha256.New()
	h.Write([]byte(eventID))
	h.Write([]byte{0})
	h.Write([]byte(subscriberID))
	h.Write([]byte{0})
	h.Write([]byte(endpointID))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var out [4 + 26]byte
	copy(out[:], "dlv_")
	idEncoding.Encode(out[4:], sum[:16])
	for i := 4; i < len(out); i++ {
		if c := out[i]; c >= 'A' && c <= 'Z' {
			out[i] = c + ('a' - 'A')
		}
	}
	return string(out[:])
}

// jobEncoder appends the JSON of update jobs fast: the update's part is
// encoded once per fan-out, the per-endpoint part appended without escaping
// (subscriber and endpoint ids, channel names and delivery ids use a
// restricted alphabet; see subscribers' validation).
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

// encode appends the job for one target to dst.
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
	case j.ID == "" || j.SubscriberID == "" || j.EndpointID == "" || j.Channel == "" || j.EventID == "":
		return nil, errors.New("job: missing id, event, subscriber, endpoint or channel")
	case j.Kind == KindUpdate && (j.StreamSeq == 0 || j.IncidentID == ""):
		return nil, errors.New("job: update job without its update reference")
	case j.Kind == KindEndpointDisabled && j.Notice == nil:
		return nil, errors.New("job: notice job without its notice")
	case directKind(j.Kind) && j.To == nil:
		return nil, errors.New("job: notice job without its recipient")
	case j.Kind != KindUpdate && j.Kind != KindEndpointDisabled && !directKind(j.Kind):
		return nil, fmt.Errorf("job: unknown kind %q", j.Kind)
	}
	return j, nil
}

// scanUpdateJob parses an update job written by jobEncoder: its keys in
// that order, strings of printable ASCII without escapes, integers in
// canonical form. It reports false for anything else, which
// encoding/json then decides. All strings share one allocation.
func scanUpdateJob(data []byte) (*Job, bool) {
	j := &Job{}
	s := jobScanner{s: string(data)}
	ok := s.lit(`{"kind":`) && s.str(&j.Kind) &&
		s.lit(`,"event":`) && s.str(&j.EventID) &&
		s.lit(`,"incident":`) && s.str(&j.IncidentID) &&
		s.lit(`,"seq":`) && s.int(&j.Sequence) &&
		s.lit(`,"eseq":`) && s.uint(&j.StreamSeq) &&
		s.lit(`,"prio":`) && s.str((*string)(&j.Priority)) &&
		s.lit(`,"id":`) && s.str(&j.ID) &&
		s.lit(`,"sub":`) && s.str(&j.SubscriberID) &&
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
