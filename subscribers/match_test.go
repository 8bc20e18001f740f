package subscribers

import (
	"testing"

	"github.com/heraldhq/herald/incident"
)

// TestMatchesAgreesWithAudience: for every endpoint of a varied set of
// subscribers (narrowed components, priorities and statuses, disabled,
// pending, paused, followers of an incident whose subscription ended or
// not) and every query, Matches says yes exactly for the targets Audience
// returns; unknown subscribers and endpoints never match.
func TestMatchesAgreesWithAudience(t *testing.T) {
	t.Parallel()
	x := NewIndex(nil)
	subs := []*Subscriber{
		{ID: "all", Endpoints: []Endpoint{{ID: "m", Channel: "email"}}},
		{ID: "oney", Components: []string{"oney"}, Endpoints: []Endpoint{{ID: "m", Channel: "email"}}},
		{ID: "p1only", MinPriority: "P1", Endpoints: []Endpoint{{ID: "m", Channel: "email"}}},
		{ID: "narrow", Components: []string{"3ds", "oney"}, Endpoints: []Endpoint{
			{ID: "mail", Channel: "email"},
			{ID: "sms", Channel: "sms", Components: []string{"3ds"}, MinPriority: "P2"},
			{ID: "started", Channel: "sms", Statuses: []incident.Status{incident.InProgress}},
		}},
		{ID: "maint", Statuses: []incident.Status{incident.Scheduled, incident.InProgress, incident.Completed}, Endpoints: []Endpoint{
			{ID: "hook", Channel: "webhook"},
			{ID: "sms", Channel: "sms", MinPriority: "P1"},
			{ID: "gone", Channel: "email", Disabled: &Disabled{Reason: "unsubscribed"}},
			{ID: "new", Channel: "email", Pending: &Pending{}},
		}},
		{ID: "paused", Paused: true, Endpoints: []Endpoint{{ID: "m", Channel: "email"}}},
		{ID: "fol", Follow: &Follow{IncidentID: "MNT-1"}, Endpoints: []Endpoint{{ID: "m", Channel: "email"}}},
		{ID: "ended", Follow: &Follow{IncidentID: "MNT-1", EndedAfter: 2}, Endpoints: []Endpoint{{ID: "m", Channel: "email"}}},
	}
	for i, s := range subs {
		x.Upsert(s, uint64(i+1))
	}
	queries := []Query{
		{Components: []string{"oney"}, Priority: "P3", Status: incident.Scheduled, IncidentID: "MNT-1", Sequence: 1},
		{Components: []string{"3ds"}, Priority: "P2", Status: incident.Scheduled, IncidentID: "MNT-1", Sequence: 3},
		{Components: []string{"3ds"}, Priority: "P1", Status: incident.InProgress, IncidentID: "MNT-2", Sequence: 1},
		{Priority: "P4", Status: incident.Resolved},
		{Components: []string{"mainframe"}, Status: incident.Completed, IncidentID: "MNT-1", Sequence: 2},
	}
	matched := 0
	for _, q := range queries {
		in := map[Target]bool{}
		for _, tg := range x.Audience(q) {
			in[Target{SubscriberID: tg.SubscriberID, EndpointID: tg.EndpointID}] = true
		}
		for _, s := range append(subs, &Subscriber{ID: "unknown", Endpoints: []Endpoint{{ID: "m"}}}) {
			for _, ep := range append(s.Endpoints, Endpoint{ID: "nope"}) {
				want := in[Target{SubscriberID: s.ID, EndpointID: ep.ID}]
				if got := x.Matches(q, s.ID, ep.ID); got != want {
					t.Errorf("Matches(%+v, %s, %s) = %v, Audience says %v", q, s.ID, ep.ID, got, want)
				}
				if want {
					matched++
				}
			}
		}
	}
	if matched < 10 {
		t.Fatalf("only %d matches: the queries test too little", matched)
	}

	// A change of preferences shows at once.
	q := queries[0]
	if !x.Matches(q, "maint", "hook") {
		t.Fatal("maint/hook should match the announcement")
	}
	x.Upsert(&Subscriber{ID: "maint", Statuses: []incident.Status{incident.InProgress}, Endpoints: []Endpoint{{ID: "hook", Channel: "webhook"}}}, 100)
	if x.Matches(q, "maint", "hook") {
		t.Error("maint/hook still matches after it stopped taking scheduled updates")
	}
}
