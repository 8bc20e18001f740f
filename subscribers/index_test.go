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

// TestIndexArenas churns an index of subscribers whose endpoint ids are all
// different (so most are not interned) until its arenas are compacted, and
// checks every answer against the expected state.
func TestIndexArenas(t *testing.T) {
	x := NewIndex(nil)
	const n = 60_000
	want := map[string]string{} // subscriber -> endpoint id
	put := func(i int, gen int) {
		id := fmt.Sprintf("sub-%05d", i)
		ep := fmt.Sprintf("endpoint-%05d-%d", i, gen)
		// 100 components: the bits above 64 live in the extras arena.
		x.Upsert(&Subscriber{ID: id, Endpoints: []Endpoint{{ID: ep, Channel: "webhook", Components: []string{fmt.Sprintf("c%03d", i%100)}}}}, uint64(gen+1))
		want[id] = ep
	}
	for i := range n {
		put(i, 0)
	}
	for i := 0; i < n; i += 3 {
		x.Remove(fmt.Sprintf("sub-%05d", i))
		delete(want, fmt.Sprintf("sub-%05d", i))
	}
	for i := 1; i < n; i += 3 {
		put(i, 1)
	}
	for i := 2; i < n; i += 3 {
		x.Remove(fmt.Sprintf("sub-%05d", i))
		delete(want, fmt.Sprintf("sub-%05d", i))
	}
	// Over 2 MB of the arenas went to garbage: they must have been
	// compacted on the way.
	if x.garbage >= 1<<20 {
		t.Errorf("arenas not compacted: %d garbage bytes of %d", x.garbage, len(x.ids)+len(x.matchers)*matcherSize)
	}
	// A third of the subscribers have one extra component each; without
	// compaction the arena would hold every one ever written (28 800).
	if live := len(want); len(x.extras) > live {
		t.Errorf("extras arena not compacted: %d entries for %d live subscribers", len(x.extras), live)
	}
	got := map[string]string{}
	for _, tg := range x.Audience(Query{Status: incident.Resolved}) {
		if _, dup := got[tg.SubscriberID]; dup {
			t.Fatalf("%s listed twice", tg.SubscriberID)
		}
		got[tg.SubscriberID] = tg.EndpointID
	}
	if len(got) != len(want) || x.Len() != len(want) {
		t.Fatalf("audience %d, Len %d, want %d", len(got), x.Len(), len(want))
	}
	for id, ep := range want {
		if got[id] != ep {
			t.Fatalf("%s: endpoint %q, want %q", id, got[id], ep)
		}
	}
	// A component whose bit is in the extras arena still narrows right
	// after the compactions.
	for _, comp := range []int{7, 99} {
		wantN := 0
		for id := range want {
			var i int
			fmt.Sscanf(id, "sub-%05d", &i)
			if i%100 == comp {
				wantN++
			}
		}
		tgs := x.Audience(Query{Components: []string{fmt.Sprintf("c%03d", comp)}, Status: incident.Resolved})
		if len(tgs) != wantN {
			t.Errorf("component c%03d: %d targets, want %d", comp, len(tgs), wantN)
		}
	}
	if rev, ok := x.Revision("sub-00001"); !ok || rev != 2 {
		t.Errorf("Revision = %d, %v", rev, ok)
	}
	if _, ok := x.Revision("sub-00000"); ok {
		t.Error("removed subscriber still indexed")
	}
	if page := x.Page("sub-00000", 2); strings.Join(page, ",") != "sub-00001,sub-00004" {
		t.Errorf("Page = %v", page)
	}
}

// TestIndexHashCollisions: ids whose hashes collide (rare with maphash;
// forced here by a constant hash) are each found, listed, updated and
// removed on their own, whichever of them holds the hash's slot.
func TestIndexHashCollisions(t *testing.T) {
	x := NewIndex(nil)
	x.hash = func(string) uint64 { return 42 }
	put := func(id, ep string, rev uint64) {
		x.Upsert(&Subscriber{ID: id, Endpoints: []Endpoint{{ID: ep, Channel: "webhook"}}}, rev)
	}
	all := func() string { return targets(x.Audience(Query{Status: incident.Resolved})) }
	put("a", "e1", 1)
	put("b", "e1", 1)
	put("c", "e1", 1)
	if got, want := all(), "a/e1 b/e1 c/e1"; got != want {
		t.Fatalf("audience %q, want %q", got, want)
	}
	put("b", "e2", 2) // an update of a collided id
	x.Remove("a")     // the slot holder goes
	put("d", "e1", 1) // a new id takes the slot
	if got, want := all(), "b/e2 c/e1 d/e1"; got != want {
		t.Fatalf("audience %q, want %q", got, want)
	}
	for id, want := range map[string]uint64{"b": 2, "c": 1, "d": 1} {
		if rev, ok := x.Revision(id); !ok || rev != want {
			t.Errorf("Revision(%s) = %d, %v; want %d", id, rev, ok, want)
		}
	}
	if _, ok := x.Revision("a"); ok {
		t.Error("a removed, still found")
	}
	x.Remove("c")
	x.Remove("d")
	if got, want := all(), "b/e2"; got != want || x.Len() != 1 {
		t.Fatalf("audience %q (Len %d), want %q", got, x.Len(), want)
	}
}
