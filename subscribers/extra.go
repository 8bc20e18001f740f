package subscribers

import (
	"slices"
	"strings"
)

// extraIndex is the part of [Index] the public pages use: the followers of
// each incident, and which subscribers hold an email address or phone
// number. It is guarded by the Index's lock.
type extraIndex struct {
	// follows maps an incident to its followers; followOf a follower to
	// its incident.
	follows  map[string][]follower
	followOf map[string]string
	// byAddress maps a digest of (channel, address) to the subscribers
	// holding it; addressesOf a subscriber to its digests.
	byAddress   map[uint64][]string
	addressesOf map[string][]uint64
}

// follower is a subscriber following one incident, with its active
// endpoints.
type follower struct {
	id      string
	ended   int64
	targets []Target
}

// covers reports whether the follower's subscription covers an update of
// sequence seq: it runs, or ended with a later update.
func (f follower) covers(seq int64) bool { return f.ended == 0 || seq <= f.ended }

func addressKey(channel, address string) string {
	return channel + "\x00" + strings.ToLower(strings.TrimSpace(address))
}

// upsert records s (called with the Index's lock held).
func (e *extraIndex) upsert(s *Subscriber, hash func(string) uint64) {
	e.remove(s.ID)
	id := strings.Clone(s.ID)
	if f := s.Follow; f != nil && !s.Paused {
		fl := follower{id: id, ended: f.EndedAfter}
		for _, ep := range s.Endpoints {
			if ep.Active() {
				fl.targets = append(fl.targets, Target{SubscriberID: id, EndpointID: strings.Clone(ep.ID), Channel: ep.Channel})
			}
		}
		if e.follows == nil {
			e.follows, e.followOf = map[string][]follower{}, map[string]string{}
		}
		e.follows[f.IncidentID] = append(e.follows[f.IncidentID], fl)
		e.followOf[id] = strings.Clone(f.IncidentID)
	}
	var digests []uint64
	for _, ep := range s.Endpoints {
		if (ep.Channel != channelEmail && ep.Channel != channelSMS) || ep.Address == "" {
			continue
		}
		h := hash(addressKey(ep.Channel, ep.Address))
		if slices.Contains(digests, h) {
			continue
		}
		digests = append(digests, h)
		if e.byAddress == nil {
			e.byAddress, e.addressesOf = map[uint64][]string{}, map[string][]uint64{}
		}
		e.byAddress[h] = append(e.byAddress[h], id)
	}
	if len(digests) > 0 {
		e.addressesOf[id] = digests
	}
}

// remove forgets subscriber id (called with the Index's lock held).
func (e *extraIndex) remove(id string) {
	if inc, ok := e.followOf[id]; ok {
		fs := slices.DeleteFunc(e.follows[inc], func(f follower) bool { return f.id == id })
		if len(fs) == 0 {
			delete(e.follows, inc)
		} else {
			e.follows[inc] = fs
		}
		delete(e.followOf, id)
	}
	for _, h := range e.addressesOf[id] {
		ids := slices.DeleteFunc(e.byAddress[h], func(s string) bool { return s == id })
		if len(ids) == 0 {
			delete(e.byAddress, h)
		} else {
			e.byAddress[h] = ids
		}
	}
	delete(e.addressesOf, id)
}

// followers appends the targets of q's incident's followers whose
// subscription covers q's sequence.
func (e *extraIndex) followers(out []Target, q Query) []Target {
	for _, f := range e.follows[q.IncidentID] {
		if f.covers(q.Sequence) {
			out = append(out, f.targets...)
		}
	}
	return out
}

// Holders returns the ids of the subscribers that have an endpoint on
// channel ("email" or "sms") with address, whatever its state, sorted. The
// address is compared trimmed and case-insensitively; callers read the
// subscribers to be sure (the index keeps digests).
func (x *Index) Holders(channel, address string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	ids := slices.Clone(x.extra.byAddress[x.hash(addressKey(channel, address))])
	slices.Sort(ids)
	return ids
}

// Followers returns the ids of the subscribers following an incident, and
// whether each one's subscription already ended.
func (x *Index) Followers(incidentID string) map[string]bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[string]bool, len(x.extra.follows[incidentID]))
	for _, f := range x.extra.follows[incidentID] {
		out[f.id] = f.ended != 0
	}
	return out
}

// EndedFollowers returns the ids of the followers whose following ended.
func (x *Index) EndedFollowers() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	for _, fs := range x.extra.follows {
		for _, f := range fs {
			if f.ended != 0 {
				out = append(out, f.id)
			}
		}
	}
	return out
}
