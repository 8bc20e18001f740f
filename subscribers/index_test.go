package subscribers

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/incident"
)

func targets(ts []Target) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.SubscriberID + "/" + t.EndpointID
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func TestAudience(t *testing.T) {
	x := NewIndex(nil)
	subs := []*Subscriber{
		{ID: "all", Endpoints: []Endpoint{{ID: "m", Channel: "email"}}},
		{ID: "oney", Components: []string{"oney"}, Endpoints: []Endpoint{{ID: "m", Channel: "email"}}},
		{ID: "p1only", MinPriority: "P1", Endpoints: []Endpoint{{ID: "m", Channel: "email"}}},
		{ID: "narrow", Components: []string{"3ds", "oney"}, Endpoints: []Endpoint{
			{ID: "mail", Channel: "email"},
			{ID: "sms", Channel: "sms", Components: []string{"3ds"}, MinPriority: "P2"},
		}},
		{ID: "resolved", Statuses: []incident.Status{incident.Resolved}, Endpoints: []Endpoint{{ID: "m", Channel: "webhook"},
			{ID: "never", Channel: "email", Statuses: []incident.Status{incident.Investigating}}}},
		{ID: "off", Endpoints: []Endpoint{{ID: "m", Channel: "email", Disabled: &Disabled{Reason: "unsubscribed"}}}},
	}
	for i, s := range subs {
		x.Upsert(s, uint64(i+1))
	}
	tests := []struct {
		q    Query
		want string
	}{
		{Query{Components: []string{"oney"}, Priority: "P3", Status: incident.Investigating}, "all/m narrow/mail oney/m"},
		{Query{Components: []string{"3ds"}, Priority: "P2", Status: incident.Identified}, "all/m narrow/mail narrow/sms"},
		{Query{Components: []string{"3ds"}, Priority: "P3", Status: incident.Identified}, "all/m narrow/mail"},
		{Query{Components: []string{"3ds"}, Priority: "P1", Status: incident.Identified}, "all/m narrow/mail narrow/sms p1only/m"},
		{Query{Priority: "P4", Status: incident.Resolved}, "all/m narrow/mail oney/m resolved/m"},
		{Query{Components: []string{"portal"}, Status: incident.Resolved}, "all/m resolved/m"},
		// An unknown component reaches only "all components" subscribers.
		{Query{Components: []string{"mainframe"}, Status: incident.Monitoring}, "all/m"},
		// Unrated counts as P4.
		{Query{Components: []string{"oney"}, Status: incident.Monitoring}, "all/m narrow/mail oney/m"},
	}
	for _, tt := range tests {
		if got := targets(x.Audience(tt.q)); got != tt.want {
			t.Errorf("Audience(%+v) = %q, want %q", tt.q, got, tt.want)
		}
	}

	// Updates replace, stale revisions are ignored, removal works.
	x.Upsert(&Subscriber{ID: "oney", Components: []string{"portal"}, Endpoints: []Endpoint{{ID: "m", Channel: "email"}}}, 10)
	x.Upsert(&Subscriber{ID: "oney", Components: []string{"oney"}, Endpoints: []Endpoint{{ID: "m", Channel: "email"}}}, 9)
	x.Remove("all")
	if got := targets(x.Audience(Query{Components: []string{"oney"}, Status: incident.Monitoring})); got != "narrow/mail" {
		t.Errorf("after changes = %q", got)
	}
	if rev, ok := x.Revision("oney"); !ok || rev != 10 {
		t.Errorf("Revision = %d, %v", rev, ok)
	}
	x.Upsert(&Subscriber{ID: "new", Endpoints: []Endpoint{{ID: "m", Channel: "sms"}}}, 11) // reuses the freed slot
	if got := x.Page("", 0); strings.Join(got, ",") != "narrow,new,off,oney,p1only,resolved" {
		t.Errorf("Page = %v", got)
	}
	if got := x.Page("off", 2); strings.Join(got, ",") != "oney,p1only" {
		t.Errorf("Page(off, 2) = %v", got)
	}
}

func TestAudienceManyComponents(t *testing.T) {
	x := NewIndex(nil)
	for i := range 80 {
		x.Upsert(&Subscriber{ID: fmt.Sprintf("s%02d", i), Components: []string{fmt.Sprintf("c%02d", i)},
			Endpoints: []Endpoint{{ID: "m", Channel: "email"}}}, 1)
	}
	for _, c := range []int{3, 70} {
		got := targets(x.Audience(Query{Components: []string{fmt.Sprintf("c%02d", c)}, Status: incident.Resolved}))
		if want := fmt.Sprintf("s%02d/m", c); got != want {
			t.Errorf("component %d: %q, want %q", c, got, want)
		}
	}
}

// benchIndex fills an index with n subscribers of 1.5 endpoints on
// average: half follow every component, the others one to three of the
// twelve catalog components; a third narrow their SMS endpoint to P1.
func benchIndex(n int) *Index {
	comps := incident.DefaultComponents()
	x := NewIndex(nil)
	for i := range n {
		s := &Subscriber{ID: fmt.Sprintf("m%07d", i), MinPriority: "P3",
			Endpoints: []Endpoint{{ID: "mail", Channel: "email"}}}
		if i%2 == 1 {
			for k := range 1 + i%3 {
				s.Components = append(s.Components, comps[(i+k*5)%len(comps)].ID)
			}
		}
		if i%2 == 0 {
			s.Endpoints = append(s.Endpoints, Endpoint{ID: "sms", Channel: "sms", MinPriority: "P1"})
		}
		x.Upsert(s, 1)
	}
	return x
}

// BenchmarkAudience1M resolves the audience of one update over a million
// subscribers and reports the index's heap per subscriber.
func BenchmarkAudience1M(b *testing.B) {
	const n = 1_000_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := benchIndex(n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSub := float64(after.HeapInuse-before.HeapInuse) / n
	q := Query{Components: []string{"oney"}, Priority: "P2", Status: incident.Investigating}
	got := len(x.Audience(q))
	b.ResetTimer()
	for b.Loop() {
		_ = x.Audience(q)
	}
	b.ReportMetric(perSub, "index-B/sub")
	b.ReportMetric(float64(got), "targets")
	runtime.KeepAlive(x)
}
