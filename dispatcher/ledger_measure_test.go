package dispatcher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/internal/natstest"
	"github.com/heraldhq/herald/secret"
)

// TestLedgerMeasure fills a delivery log with HERALD_LEDGER_ROWS
// notifications (default 1 000 000; 10 % of them retried once, their
// records interleaved as concurrent deliveries interleave), over 20
// incidents, then runs `herald ledger export` as a child process, for one
// incident and for the whole log, and reports the export's peak memory
// (the child's maximum resident set), its speed, the bytes each record
// takes on disk and the server's memory per delivery subject. It takes a
// few minutes and is not part of the default run: `make ledger-measure`
// (HERALD_LEDGER_MEASURE=1).
func TestLedgerMeasure(t *testing.T) {
	if os.Getenv("HERALD_LEDGER_MEASURE") == "" {
		t.Skip("set HERALD_LEDGER_MEASURE=1 (make ledger-measure) to measure the ledger export")
	}
	rows := 1_000_000
	if v := os.Getenv("HERALD_LEDGER_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			t.Fatalf("HERALD_LEDGER_ROWS=%q", v)
		}
		rows = n
	}
	const incidents = 20
	bin := filepath.Join(t.TempDir(), "herald")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/herald").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ns := natstest.Start(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	ctx := context.Background()
	topo, err := Setup(ctx, js, Config{SecretKey: secret.Value(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range incidents {
		id := fmt.Sprintf("MEAS-%02d", i)
		if _, err := topo.Snapshots.Put(ctx, id, []byte(`{"incident_id":"`+id+`","latest_sequence":1,"updates":[{"sequence":1,"event_id":"`+id+`:1","state":"done"}]}`)); err != nil {
			t.Fatal(err)
		}
	}
	heapBefore := heapInUse()
	start := time.Now()
	records := 0
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	publish := func(r *Record) {
		if _, err := js.PublishMsgAsync(recordMsg(r), jetstream.WithStallWait(time.Minute)); err != nil {
			t.Fatal(err)
		}
		records++
	}
	var retried []Record // retries whose success comes later
	for i := range rows {
		inc := fmt.Sprintf("MEAS-%02d", i%incidents)
		sub := fmt.Sprintf("m%07d", i/2)
		ep, ch := "mail", channels.Email
		if i%2 == 1 {
			ep, ch = "wh", channels.Webhook
		}
		ev := inc + ":1"
		r := Record{DeliveryID: DeliveryID(ev, sub, ep), Kind: KindUpdate, EventID: ev, IncidentID: inc, Sequence: 1,
			SubscriberID: sub, EndpointID: ep, Channel: ch, Attempt: 1, Outcome: Delivered, Status: 200,
			BodySHA256: channels.HashBody([]byte(sub + ep)), Locale: "fr", Requested: "fr-FR", DurationMS: 12.5,
			At: at.Add(time.Duration(i) * time.Millisecond)}
		if ch == channels.Email {
			r.Status, r.ProviderID = 250, "4XhQ2m1Zz8"
		}
		if i%10 == 3 {
			retry := r
			next := r.At.Add(time.Minute)
			retry.Outcome, retry.Status, retry.Reason, retry.NextAttemptAt = Retrying, 503, "webhook hooks.example: retry: status 503", &next
			publish(&retry)
			r.Attempt = 2
			retried = append(retried, r)
			if len(retried) < 100 {
				continue
			}
			r, retried = retried[0], retried[1:]
		}
		publish(&r)
	}
	for i := range retried {
		publish(&retried[i])
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		t.Fatal("publishes not acknowledged")
	}
	info, err := topo.DeliveryLog.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The server keeps per-subject state in memory: for every subject its
	// index entry, and per recently used block a subject table that it
	// drops after two idle minutes. What stays is the cost of retention.
	filled, heapAfter := heapInUse(), uint64(0)
	if rows >= 500_000 { // the memory at rest is measured on a large log only
		time.Sleep(130 * time.Second)
		heapAfter = heapInUse()
	}
	disk := dirSize(t, ns.JetStreamConfig().StoreDir, StreamDeliveryLog)
	t.Logf("filled: %d records of %d notifications in %s", info.State.Msgs, rows, time.Since(start).Round(time.Second))
	t.Logf("bytes per record: %.0f stored (stream state), %.0f on disk (files of DELIVERY_LOG)", float64(info.State.Bytes)/float64(info.State.Msgs), float64(disk)/float64(info.State.Msgs))
	t.Logf("server heap per delivery subject (this process, after GC): %.0f B just filled", float64(filled-heapBefore)/float64(rows))
	if heapAfter > 0 {
		t.Logf("server heap per delivery subject at rest (2 idle minutes later, after GC): %.0f B", float64(heapAfter-heapBefore)/float64(rows))
	}
	if int(info.State.Msgs) != records {
		t.Fatalf("%d records stored, %d published", info.State.Msgs, records)
	}

	// Progress of one incident: the first question reads its records, the
	// next ones only what came since.
	prog := NewProgress(topo)
	for _, what := range []string{"first", "second"} {
		began := time.Now()
		p, err := prog.Incident(ctx, "MEAS-03")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("progress of one incident (%d deliveries), %s question: %s", p.Updates[0].Total.Targets, what, time.Since(began).Round(time.Millisecond))
	}

	// The child's peak resident set is read from /proc (VmHWM, its own
	// address space's high-water mark): the rusage of a child counts the
	// parent's pages it shared between fork and exec, here the whole
	// test process with its nats-server. Its peak Go heap comes from the
	// runtime's GC trace.
	export := func(args ...string) (int, int64, int64, time.Duration) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"ledger", "export", "--nats-url", ns.ClientURL()}, args...)...)
		var lines lineCounter
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &lines, &stderr
		cmd.Env = append(os.Environ(), "HERALD_DATA="+t.TempDir(), "GODEBUG=gctrace=1")
		began := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var hwm int64
		for running := true; running; {
			if v := vmHWM(cmd.Process.Pid); v > hwm {
				hwm = v
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("herald %v: %v\n%s", args, err, stderr.String())
				}
				running = false
			case <-time.After(10 * time.Millisecond):
			}
		}
		return lines.n, hwm, peakHeap(stderr.String()), time.Since(began)
	}
	perIncident := rows / incidents
	for _, c := range []struct {
		what string
		args []string
		rows int
		head int
	}{
		{"one incident, CSV", []string{"--incident", "MEAS-03", "--format", "csv"}, perIncident, 1},
		{"the whole log, CSV", []string{"--format", "csv"}, rows, 1},
		{"the whole log, JSON lines", []string{"--format", "jsonl"}, rows, 0},
	} {
		n, rss, heap, took := export(c.args...)
		if n != c.rows+c.head {
			t.Errorf("%s: %d lines, want %d rows", c.what, n, c.rows)
		}
		t.Logf("export of %s: %d rows in %s (%.0f rows/s), peak RSS %.1f MiB, peak Go heap %d MB", c.what, n-c.head, took.Round(time.Millisecond),
			float64(n-c.head)/took.Seconds(), float64(rss)/(1<<20), heap)
	}
}

// vmHWM returns the peak resident set of process pid in bytes (0 when it
// cannot be read).
func vmHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// peakHeap returns the largest heap (MB) a GC trace shows: the first two
// sizes of "A->B->C MB".
func peakHeap(trace string) int64 {
	var peak int64
	for _, line := range strings.Split(trace, "\n") {
		_, rest, ok := strings.Cut(line, " ms cpu, ")
		if !ok {
			continue
		}
		sizes, _, _ := strings.Cut(rest, " MB")
		for _, f := range strings.Split(sizes, "->")[:2] {
			if v, err := strconv.ParseInt(f, 10, 64); err == nil && v > peak {
				peak = v
			}
		}
	}
	return peak
}

// lineCounter counts the lines written to it.
type lineCounter struct{ n int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

var _ io.Writer = (*lineCounter)(nil)

// heapInUse returns the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// dirSize returns the bytes of the files under root whose path holds name.
func dirSize(t *testing.T, root, name string) int64 {
	t.Helper()
	var total int64
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, name) {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
