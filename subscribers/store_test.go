package subscribers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/incident"
	"github.com/nats-io/nats.go/jetstream"
)

// openKV starts an embedded JetStream server and returns a fresh
// "subscribers" bucket.
func openKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	kv, _ := openKVJS(t)
	return kv
}

// openKVJS is openKV with the JetStream context of the bucket.
func openKVJS(t *testing.T) (jetstream.KeyValue, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Open(ctx, broker.Config{DataDir: t.TempDir(), Listen: "none"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kv, err := b.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "subscribers"})
	if err != nil {
		t.Fatal(err)
	}
	return kv, b.JS
}

// TestPrefetch reads many subscribers in one request into the lookup
// cache: the current ones at the revision wanted, not the deleted ones nor
// those the server holds at an older revision than asked for.
func TestPrefetch(t *testing.T) {
	kv, js := openKVJS(t)
	ctx := context.Background()
	writer := NewStore(kv, testRules(t))
	revs := map[string]uint64{}
	for i := range 40 {
		s := valid()
		s.ID = fmt.Sprintf("m_%03d", i)
		if _, err := writer.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
		_, rev, err := writer.Get(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		revs[s.ID] = rev
	}
	if err := writer.Delete(ctx, "m_007"); err != nil {
		t.Fatal(err)
	}

	st := NewStore(kv, testRules(t)) // an empty cache
	want := map[string]uint64{}
	for id, rev := range revs {
		want[id] = rev
	}
	want["m_011"] = revs["m_011"] + 1000 // newer than the server has
	want["m_999"] = 1                    // never existed
	want["bad id!"] = 1                  // not a subscriber id
	if err := st.Prefetch(ctx, js, want); err != nil {
		t.Fatal(err)
	}
	for id, rev := range revs {
		held := st.Holds(id, rev)
		if wantHeld := id != "m_007" && id != "m_011"; held != wantHeld {
			t.Errorf("after Prefetch, Holds(%s) = %v, want %v", id, held, wantHeld)
		}
	}
	if st.Holds("m_011", want["m_011"]) || st.Holds("m_999", 1) {
		t.Error("Prefetch cached a revision it did not read")
	}
	// What Prefetch cached is what Get reads.
	got, err := st.Lookup(ctx, "m_005", revs["m_005"])
	if err != nil {
		t.Fatal(err)
	}
	direct, _, _ := writer.Get(ctx, "m_005")
	if got.ID != direct.ID || got.Endpoints[3].URL != direct.Endpoints[3].URL || got.Endpoints[3].Secret.Reveal() != direct.Endpoints[3].Secret.Reveal() {
		t.Errorf("prefetched %+v, stored %+v", got, direct)
	}
	// Nothing to read, or only ids that cannot exist: no request, no error.
	if err := st.Prefetch(ctx, js, map[string]uint64{"bad id!": 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.Prefetch(ctx, js, map[string]uint64{"m_998": 1}); err != nil {
		t.Fatal(err)
	}
}

func TestStoreAndWatch(t *testing.T) {
	kv := openKV(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := NewStore(kv, testRules(t))

	created, err := st.Put(ctx, valid())
	if err != nil || !created {
		t.Fatalf("Put = %v, %v", created, err)
	}
	// An invalid subscriber is refused with its fields, nothing stored.
	bad := valid()
	bad.ID = "m_bad"
	bad.Endpoints[1].Address = "12"
	if _, err := st.Put(ctx, bad); !errors.As(err, new(FieldErrors)) {
		t.Fatalf("Put(bad) = %v, want FieldErrors", err)
	}
	if _, _, err := st.Get(ctx, "m_bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(m_bad) = %v, want ErrNotFound", err)
	}

	x := NewIndex(nil)
	watchDone := make(chan error, 1)
	go func() { watchDone <- x.Watch(ctx, kv) }()
	select {
	case <-x.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("index never ready")
	}
	if x.Len() != 1 {
		t.Fatalf("index holds %d subscribers after load", x.Len())
	}
	q := Query{Components: []string{"3ds"}, Priority: "P1", Status: incident.Investigating}
	if got := targets(x.Audience(q)); got != "m_1042/e1 m_1042/e2 m_1042/e3 m_1042/e4" {
		t.Fatalf("audience = %q", got)
	}

	// Disabling an endpoint reaches the index through the watch.
	sub, changed, err := st.DisableEndpoint(ctx, "m_1042", "e4", "HTTP 410 Gone", time.Now())
	if err != nil || !changed || sub.Endpoint("e4").Disabled == nil {
		t.Fatalf("DisableEndpoint = %v, %v", changed, err)
	}
	if _, changed, _ := st.DisableEndpoint(ctx, "m_1042", "e4", "again", time.Now()); changed {
		t.Error("disabling twice reports a change")
	}
	if _, _, err := st.DisableEndpoint(ctx, "m_1042", "nope", "x", time.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("DisableEndpoint(unknown endpoint) = %v", err)
	}
	waitFor(t, func() bool { return !strings.Contains(targets(x.Audience(q)), "e4") })

	// Putting the same endpoint again keeps it disabled; a new URL
	// re-enables it.
	again := valid()
	if created, err := st.Put(ctx, again); err != nil || created {
		t.Fatalf("Put again = %v, %v", created, err)
	}
	got, rev, err := st.Get(ctx, "m_1042")
	if err != nil || got.Endpoint("e4").Disabled == nil {
		t.Fatalf("re-put re-enabled the endpoint: %+v, %v", got.Endpoint("e4"), err)
	}
	moved := valid()
	moved.Endpoints[3].URL = "https://dupont.example/hooks/v2"
	if _, err := st.Put(ctx, moved); err != nil {
		t.Fatal(err)
	}
	got, _, _ = st.Get(ctx, "m_1042")
	if got.Endpoint("e4").Disabled != nil {
		t.Fatal("a new URL did not re-enable the endpoint")
	}
	waitFor(t, func() bool { return strings.Contains(targets(x.Audience(q)), "e4") })

	// Lookup caches by revision and sees newer ones.
	l1, err := st.Lookup(ctx, "m_1042", rev)
	if err != nil || l1.Endpoint("e4").URL != "https://dupont.example/hooks/v2" {
		t.Fatalf("Lookup = %+v, %v", l1, err)
	}
	if l2, _ := st.Lookup(ctx, "m_1042", rev); l2 != l1 {
		t.Error("Lookup did not serve the cached subscriber")
	}

	if err := st.Delete(ctx, "m_1042"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "m_1042"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete = %v", err)
	}
	waitFor(t, func() bool { return x.Len() == 0 })

	// A record that does not decode is skipped, the watch goes on.
	if _, err := kv.Put(ctx, "garbage", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	other := valid()
	other.ID = "m2"
	if _, err := st.Put(ctx, other); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, ok := x.Revision("m2"); return ok })
	if x.Len() != 1 {
		t.Errorf("index holds %d, want only m2", x.Len())
	}
	cancel()
	if err := <-watchDone; err != nil {
		t.Errorf("Watch = %v", err)
	}
}

func TestStoreConcurrentUpdates(t *testing.T) {
	kv := openKV(t)
	ctx := context.Background()
	st := NewStore(kv, testRules(t))
	s := valid()
	for i := range 8 {
		s.Endpoints = append(s.Endpoints, Endpoint{ID: fmt.Sprintf("x%d", i), Channel: "email", Address: fmt.Sprintf("x%d@dupont.example", i)})
	}
	if _, err := st.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, _, err := st.DisableEndpoint(ctx, s.ID, fmt.Sprintf("x%d", i), "test", time.Now()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _, err := st.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if got.Endpoint(fmt.Sprintf("x%d", i)).Disabled == nil {
			t.Errorf("x%d lost its disabled mark to a concurrent update", i)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watchedKV hands every watcher it opens to the test.
type watchedKV struct {
	jetstream.KeyValue
	watchers chan jetstream.KeyWatcher
}

func (kv watchedKV) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w, err := kv.KeyValue.WatchAll(ctx, opts...)
	if err == nil {
		kv.watchers <- w
	}
	return w, err
}

// TestWatchRestarts: a watch that stops is started again, and the index
// keeps up with the bucket instead of freezing.
func TestWatchRestarts(t *testing.T) {
	kv := watchedKV{KeyValue: openKV(t), watchers: make(chan jetstream.KeyWatcher, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x := NewIndex(nil)
	go func() { _ = x.Watch(ctx, kv) }()
	<-x.Ready()
	if err := (<-kv.watchers).Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-kv.watchers:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch was not started again")
	}
	if _, err := NewStore(kv, testRules(t)).Put(ctx, valid()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return x.Len() == 1 })
}
