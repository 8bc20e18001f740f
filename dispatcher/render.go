package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/subscribers"
	"github.com/heraldhq/herald/templates"
)

// render loads the update (or notice) of job j and renders it for an
// endpoint, as delivery id.
func (dl *deliverer) render(ctx context.Context, j *Job, id string, sub *subscribers.Subscriber, ep *subscribers.Endpoint, loc *time.Location, number int) (*channels.Message, *templates.Rendered, error) {
	d := dl.d
	rc := templates.Recipient{Locale: sub.Locale, Location: loc, Name: sub.Name}
	if j.To == nil && (j.Channel == channels.Email || j.Channel == channels.Slack) {
		rc.UnsubscribeURL = d.links.UnsubscribeURL(sub.ID, ep.ID, ep.Target())
		rc.PreferencesURL = d.links.PreferencesURL(sub.ID, ep.ID, ep.Target())
	}
	m := &channels.Message{ID: id, Kind: j.Kind, Attempt: number}
	var r *templates.Rendered
	switch j.Kind {
	case KindUpdate, KindReminder:
		u, err := d.events.get(ctx, j.StreamSeq, j.updateEventID())
		if err != nil {
			return nil, nil, err
		}
		if err := d.present(ctx, j, &u); err != nil { // maintenance.go: reminder, rescheduling
			return nil, nil, err
		}
		if r, err = d.renderer.Render(u, j.Channel, rc); err != nil {
			return nil, nil, err
		}
		m.IncidentID, m.Sequence, m.Status, m.Closed = u.Event.IncidentID, u.Event.Sequence, string(u.Event.Status), u.Event.Status.Closed()
	case KindConfirm, KindFollowConfirm, KindManageLink, KindCode:
		var err error
		if r, err = d.renderDirect(j, rc); err != nil {
			return nil, nil, err
		}
	case KindEndpointDisabled:
		at, _ := time.Parse(time.RFC3339, j.Notice.At)
		var err error
		r, err = d.renderer.RenderNotice(templates.Notice{
			Kind: j.Kind, EndpointID: j.Notice.EndpointID, EndpointChannel: j.Notice.Channel, Reason: j.Notice.Reason, At: at,
		}, j.Channel, rc)
		if err != nil {
			return nil, nil, err
		}
	}
	m.Locale, m.Subject, m.Text, m.HTML = r.Locale, r.Subject, r.Text, r.HTML
	m.Body, m.Parent, m.ContentType, m.Headers = r.Body, r.Parent, r.ContentType, r.Headers
	for _, a := range r.Attachments { // the .ics of a maintenance email
		m.Attachments = append(m.Attachments, channels.Attachment(a))
	}
	return m, r, nil
}

// errTransientLoad marks a failure to load an update that is worth retrying.
var errTransientLoad = errors.New("update temporarily unavailable")

// missingUpdateError reports an update that is gone from INCIDENTS.
type missingUpdateError struct{ seq uint64 }

func (e *missingUpdateError) Error() string {
	return fmt.Sprintf("update %d is no longer in the %s stream", e.seq, StreamIncidents)
}

// eventCache keeps recently used updates, read from INCIDENTS by stream
// sequence.
type eventCache struct {
	stream jetstream.Stream
	max    int

	mu      sync.Mutex
	entries map[uint64]templates.Update
	order   []uint64
}

func newEventCache(stream jetstream.Stream, max int) *eventCache {
	return &eventCache{stream: stream, max: max, entries: map[uint64]templates.Update{}}
}

// get returns the update stored at seq, checking it is eventID.
func (c *eventCache) get(ctx context.Context, seq uint64, eventID string) (templates.Update, error) {
	c.mu.Lock()
	u, ok := c.entries[seq]
	c.mu.Unlock()
	if ok {
		return u, nil
	}
	raw, err := c.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return u, &missingUpdateError{seq: seq}
	}
	if err != nil {
		return u, fmt.Errorf("%w: %w", errTransientLoad, err)
	}
	ev, err := incident.Decode(raw.Data, 0)
	if err != nil {
		return u, fmt.Errorf("update %d: %w", seq, err)
	}
	if ev.ID != eventID {
		return u, &missingUpdateError{seq: seq}
	}
	u = templates.Update{Event: ev, AcceptedAt: raw.Time}
	c.mu.Lock()
	if _, ok := c.entries[seq]; !ok {
		c.entries[seq] = u
		c.order = append(c.order, seq)
		if len(c.order) > c.max {
			delete(c.entries, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
	return u, nil
}

// acceptedAt returns when the update at seq was stored, if cached.
func (c *eventCache) acceptedAt(seq uint64) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.entries[seq]
	return u.AcceptedAt, ok
}
