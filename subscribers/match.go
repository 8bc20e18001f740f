package subscribers

// Matches reports whether the update q describes goes to endpoint
// endpointID of subscriber subscriberID as the index stands now: the
// endpoint is active and its (and its subscriber's) components, priority
// and statuses take the update, or the subscriber follows q's incident and
// its subscription covers q's sequence. It is [Index.Audience] asked about
// one endpoint, for work that goes out long after the audience was chosen
// (a maintenance reminder respects the preferences of the day it is sent).
func (x *Index) Matches(q Query, subscriberID, endpointID string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if i, ok := x.find(subscriberID); ok {
		e := &x.entries[i]
		for _, m := range x.matchers[e.epOff : e.epOff+uint32(e.epN)] {
			if x.name(&m) == endpointID {
				f := x.filter(q)
				return f.match(&m, x.extras)
			}
		}
	}
	if q.IncidentID == "" {
		return false
	}
	for _, t := range x.extra.followers(nil, q) {
		if t.SubscriberID == subscriberID && t.EndpointID == endpointID {
			return true
		}
	}
	return false
}
