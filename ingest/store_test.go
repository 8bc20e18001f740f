package ingest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/incident"
	"github.com/heraldhq/herald/ingest"
)

// converted returns the incident of a webhook fixture, converted.
func converted(t *testing.T, name string) *ingest.Incident {
	t.Helper()
	p, err := ingest.ParseStatuspageWebhook(fixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	inc, err := ingest.Mapping{}.Convert(p.Incident)
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

// TestStoreConcurrentPublishersPublishOnce: two processes, each with
// several goroutines, publish the same incident at once; every update is
// published once, by one of them (the claim), not left to the stream's
// deduplication.
func TestStoreConcurrentPublishersPublishOnce(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	stores := []*ingest.Store{bu.store("p1"), bu.store("p2")}
	inc := converted(t, "incident-4.json")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := stores[i%2].Publish(t.Context(), ingest.SourceKindStatuspage, inc, false); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := bu.publishes.Load(); n != 4 {
		t.Fatalf("published %d times, want 4", n)
	}
	evs := bu.events()
	for i, ev := range evs {
		if ev.Sequence != int64(i+1) {
			t.Fatalf("event %d has sequence %d: %v", i, ev.Sequence, ids(evs))
		}
	}
}

// TestStoreTakesOverAStaleClaim: a process that claimed an incident and
// hangs holds it off for the claim timeout; then another publishes the
// updates, in order, under the sequences already given.
func TestStoreTakesOverAStaleClaim(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	inc := converted(t, "incident-3.json")
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hung, err := ingest.OpenStore(t.Context(), bu.js, func(ctx context.Context, ev *incident.Event) error {
		once.Do(func() { close(entered) })
		<-release
		return errors.New("the process died")
	}, ingest.StoreConfig{Holder: "hung", Now: bu.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := hung.Publish(context.Background(), ingest.SourceKindStatuspage, inc, false)
		done <- err
	}()
	<-entered
	other, err := ingest.OpenStore(t.Context(), bu.js, bu.publish, ingest.StoreConfig{Holder: "other", Now: bu.clock.Now, ClaimWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Publish(t.Context(), ingest.SourceKindStatuspage, inc, false)
	var busy *ingest.BusyError
	if !errors.As(err, &busy) || busy.Holder != "hung" {
		t.Fatalf("publish during the claim: %v, want a BusyError naming the holder", err)
	}
	bu.clock.Advance(time.Minute)
	res, err := other.Publish(t.Context(), ingest.SourceKindStatuspage, inc, false)
	if err != nil || len(res.Published) != 3 {
		t.Fatalf("publish after the claim expired: %d %v", len(res.Published), err)
	}
	close(release)
	if err := <-done; err == nil {
		t.Fatal("the hung publisher's failure was not reported")
	}
	evs := bu.events()
	for i, ev := range evs {
		if ev.Sequence != int64(i+1) {
			t.Fatalf("sequences %v", evs)
		}
	}
	if seq, published, err := other.Known(t.Context(), ingest.SourceKindStatuspage, inc.ID, "u3c5vx7y9p1c"); err != nil || seq != 3 || !published {
		t.Fatalf("record of u3: %d %v %v", seq, published, err)
	}
}

// TestStoreRefusedUpdateDoesNotBlockTheIncident: an update Herald refuses
// (too large) is recorded refused and logged; the incident's later updates
// are published, and publishing the incident again offers it no more.
func TestStoreRefusedUpdateDoesNotBlockTheIncident(t *testing.T) {
	t.Parallel()
	bu := setup(t)
	inc := converted(t, "incident-3.json")
	tooLarge := inc.Updates[1].Key
	offered := 0
	st, err := ingest.OpenStore(t.Context(), bu.js, func(ctx context.Context, ev *incident.Event) error {
		if ev.ID == tooLarge {
			offered++
			return &incident.TooLargeError{Size: 300 << 10, Limit: 256 << 10}
		}
		return bu.publish(ctx, ev)
	}, ingest.StoreConfig{Holder: "p1", Now: bu.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Publish(t.Context(), ingest.SourceKindStatuspage, inc, false)
	if err != nil || len(res.Published) != 2 || res.Refused != 1 {
		t.Fatalf("publish: %d published, %d refused, %v; want 2, 1, nil", len(res.Published), res.Refused, err)
	}
	if res, err = st.Publish(t.Context(), ingest.SourceKindStatuspage, inc, false); err != nil || len(res.Published) != 0 || offered != 1 {
		t.Fatalf("publish again: %d published, the refused update offered %d times, %v", len(res.Published), offered, err)
	}
	if evs := bu.events(); len(evs) != 2 || evs[1].Sequence != 3 {
		t.Fatalf("events %v: want the first and third updates, sequences 1 and 3", ids(evs))
	}
}
