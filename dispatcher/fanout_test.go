package dispatcher

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/subscribers"
)

// partitionOf is the fan-out partition the INCIDENTS stream's subject
// transform gives incidentID (nats-server's partition(): FNV-1a of the
// token, modulo the count). The tests check it against the stored subject.
func partitionOf(incidentID string) int {
	h := fnv.New32a()
	h.Write([]byte(incidentID))
	return int(h.Sum32() % fanoutPartitions)
}

// storedSubject returns the subject INCIDENTS stored the update at seq under.
func (b *testBundle) storedSubject(seq uint64) string {
	b.t.Helper()
	m, err := b.d.topo.Incidents.GetMsg(b.ctx, seq)
	if err != nil {
		b.t.Fatal(err)
	}
	return m.Subject
}

// fanouts returns, by event id, when each fan-out began and ended, from
// the "update fanned out" log lines (their time, less what they took).
func (b *testBundle) fanouts() map[string][2]time.Time {
	out := map[string][2]time.Time{}
	for _, line := range strings.Split(b.logs.String(), "\n") {
		if !strings.Contains(line, `"msg":"update fanned out"`) {
			continue
		}
		var rec struct {
			Time  time.Time `json:"time"`
			Event string    `json:"event"`
			Took  string    `json:"took"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			b.t.Fatal(err)
		}
		took, err := time.ParseDuration(rec.Took)
		if err != nil {
			b.t.Fatal(err)
		}
		out[rec.Event] = [2]time.Time{rec.Time.Add(-took), rec.Time}
	}
	return out
}

// TestFanoutPartitions: an update of another incident fans out while a
// large fan-out is under way (their fan-outs overlap in time), while a
// later update of the same incident waits for the first (it begins after
// the first ended).
func TestFanoutPartitions(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{noRun: true, cfg: func(c *Config) {
		// A slow fan-out: many small batches, one publish in flight.
		c.BatchSize, c.FanoutMaxPending = 1, 1
	}})
	const big = 3000
	for i := range big {
		if _, err := b.d.store.Put(b.ctx, b.webhookSubscriber(fmt.Sprintf("m%04d", i), "/w")); err != nil {
			t.Fatal(err)
		}
	}
	// Two incidents in different partitions.
	other := "INC-OTHER-0"
	for i := 1; i < 100 && partitionOf(other) == partitionOf("INC-BIG"); i++ {
		other = fmt.Sprintf("INC-OTHER-%d", i)
	}
	first := b.publish(event("INC-BIG", 1, "investigating"))
	second := b.publish(event("INC-BIG", 2, "identified"))
	third := b.publish(event(other, 1, "investigating", "components", "[\"3ds\"]"))
	for _, r := range []*PublishResult{first, second, third} {
		id, _, _ := strings.Cut(r.ID, ":")
		if want := fmt.Sprintf("incidents.%d.%s", partitionOf(id), id); b.storedSubject(r.StreamSeq) != want {
			t.Fatalf("%s stored under %s, want %s", r.ID, b.storedSubject(r.StreamSeq), want)
		}
	}
	b.run()
	b.waitFor("three fan-outs", 60*time.Second, func() bool { return len(b.fanouts()) == 3 })
	f := b.fanouts()
	big1, big2, small := f["INC-BIG:1"], f["INC-BIG:2"], f[other+":1"]
	t.Logf("INC-BIG:1 %v, INC-BIG:2 %v after it, %s:1 %v after it", big1[1].Sub(big1[0]), big2[0].Sub(big1[0]), other, small[0].Sub(big1[0]))
	if !small[0].Before(big1[1]) || !big1[0].Before(small[1]) {
		t.Errorf("%s:1 [%v, %v] did not fan out during INC-BIG:1 [%v, %v]", other, small[0], small[1], big1[0], big1[1])
	}
	if big2[0].Before(big1[1]) {
		t.Errorf("INC-BIG:2 began at %v, before INC-BIG:1 ended at %v", big2[0], big1[1])
	}
}

// TestFanoutWhenDeliveriesRefuses: while DELIVERIES refuses the batches, the
// fan-out gives up with a bounded number of publishes in flight and comes
// back later; once it takes them again every endpoint gets the update once.
func TestFanoutWhenDeliveriesRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{cfg: func(c *Config) { c.BatchSize, c.FanoutMaxPending = 16, 2 }})
	const n = 300
	for i := range n {
		b.putSubscriber(b.webhookSubscriber(fmt.Sprintf("m%03d", i), "/w"))
	}
	// DELIVERIES is full and refuses new messages.
	info, err := b.d.topo.Deliveries.Info(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	full := info.Config
	full.MaxMsgs, full.Discard = 1, jetstream.DiscardNew
	if _, err := b.js.Publish(b.ctx, deliverySubject("filler"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.js.UpdateStream(b.ctx, full); err != nil {
		t.Fatal(err)
	}
	b.publish(event("INC-FULL", 1, "investigating"))
	b.waitFor("the fan-out to give up", 30*time.Second, func() bool {
		return strings.Contains(b.logs.String(), "publishing batches failed")
	})
	if v := testutil.ToFloat64(b.d.metrics.infraErrors.WithLabelValues(componentDeliveries)); v < 1 {
		t.Errorf("infrastructure errors of DELIVERIES: %v", v)
	}
	full.MaxMsgs, full.Discard = -1, jetstream.DiscardOld
	if _, err := b.js.UpdateStream(b.ctx, full); err != nil {
		t.Fatal(err)
	}
	b.waitFor("every endpoint", 60*time.Second, func() bool { return b.recv.delivered("/w") >= n })
	b.waitFor("the jobs done", 10*time.Second, func() bool {
		info, err := b.d.topo.Deliveries.Info(b.ctx)
		return err == nil && info.State.Msgs == 1 // the filler
	})
	if got := b.recv.delivered("/w"); got != n {
		t.Errorf("%d sends for %d endpoints", got, n)
	}
	seen := map[string]int{}
	for _, h := range b.recv.hitsFor("/w") {
		seen[h.id]++
	}
	for id, c := range seen {
		if c > 1 {
			t.Errorf("%s sent %d times", id, c)
		}
	}
}

// TestReplayOfAnOldUpdate: an update replayed long after it was fanned out
// (past the duplicate window, after hundreds of later updates) sends
// nothing; what the snapshot keeps stays bounded.
func TestReplayOfAnOldUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{cfg: func(c *Config) {
		c.DuplicateWindow = 2 * time.Second
		for _, name := range channels.Names() {
			c.Channels[name] = ChannelConfig{AckWait: time.Second}
		}
	}})
	b.putSubscriber(b.webhookSubscriber("m1", "/m1"))
	b.publish(event("TRIM-1", 1, "investigating"))
	b.waitFor("the first update", 10*time.Second, func() bool { return b.recv.delivered("/m1") == 1 })
	for seq := 2; seq <= 502; seq++ {
		b.publish(event("TRIM-1", seq, "monitoring", "notify", "false"))
	}
	time.Sleep(2500 * time.Millisecond) // past the duplicate window
	if again := b.publish(event("TRIM-1", 1, "investigating")); again.Duplicate {
		t.Fatal("the replay was dropped by the stream; the test needs it stored")
	}
	// A later update, after the replay in the incident's order, arrives:
	// the replay had its turn.
	b.publish(event("TRIM-1", 503, "resolved"))
	b.waitFor("the marker update", 30*time.Second, func() bool { return b.recv.delivered("/m1") == 2 })
	b.waitFor("its record", 10*time.Second, func() bool { return len(b.records("m1")) == 2 })
	for _, r := range b.records("m1") {
		if r.Sequence != 1 && r.Sequence != 503 {
			t.Errorf("record %+v", r)
		}
	}
	if n := len(b.recv.hitsFor("/m1")); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	snap, err := b.d.Snapshot(b.ctx, "TRIM-1")
	if err != nil {
		t.Fatal(err)
	}
	if snap.LatestSeq != 503 || len(snap.Updates) > maxSnapshotUpdates {
		t.Errorf("snapshot: latest %d, %d updates kept", snap.LatestSeq, len(snap.Updates))
	}
	_ = subscribers.Target{}
}
