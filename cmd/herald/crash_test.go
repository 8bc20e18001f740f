package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/dispatcher"
)

const crashSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// The crash test's duplicate window (short, so that the restart after the
// first kill comes past it) and batch size.
const (
	crashWindow = 5 * time.Second
	crashBatch  = 16
)

// buildHerald compiles the binary once per test run.
var buildHerald = sync.OnceValues(func() (string, error) { return buildBinary("herald-bin", "herald", ".") })

// buildBinary compiles package pkg into a new temporary directory (named
// after dir) as name, and returns the binary's path.
func buildBinary(dir, name, pkg string) (string, error) {
	tmp, err := os.MkdirTemp("", dir)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(tmp, name)
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// crashReceiver counts every webhook-id it takes and when each request ran,
// to tell which sends were in flight at a kill. Endpoints whose number is
// a multiple of flakyEvery refuse their first request (503), so that
// retries are parked and brought back across the kills.
type crashReceiver struct {
	srv   *httptest.Server
	wh    *standardwebhooks.Webhook
	delay time.Duration

	mu      sync.Mutex
	counts  map[string]int // 2xx answers by webhook-id
	refused map[string]int // 503 answers by webhook-id
	spans   []span
	bad     int
}

const flakyEvery = 20

type span struct{ start, end time.Time }

func newCrashReceiver(t *testing.T, delay time.Duration) *crashReceiver {
	wh, err := standardwebhooks.NewWebhook(crashSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &crashReceiver{wh: wh, delay: delay, counts: map[string]int{}, refused: map[string]int{}}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		body, _ := io.ReadAll(req.Body)
		time.Sleep(r.delay)
		err := r.wh.Verify(body, req.Header)
		n, _ := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/h/"))
		id := req.Header.Get("webhook-id")
		r.mu.Lock()
		if err != nil {
			r.bad++
		}
		status := http.StatusNoContent
		if n%flakyEvery == 0 && r.refused[id] == 0 {
			status = http.StatusServiceUnavailable
			r.refused[id]++
		} else {
			r.counts[id]++
		}
		r.spans = append(r.spans, span{start, time.Now()})
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	r.srv.Config.SetKeepAlivesEnabled(true)
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *crashReceiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counts)
}

// inFlightAt counts requests running around t: started before it and
// finished less than margin before it (their delivery record could not have
// been stored yet).
func (r *crashReceiver) inFlightAt(t time.Time, margin time.Duration) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.spans {
		if s.start.Before(t) && s.end.After(t.Add(-margin)) {
			n++
		}
	}
	return n
}

// heraldProcess is `herald serve` as a child process.
type heraldProcess struct {
	cmd  *exec.Cmd
	logs *os.File
}

func startHerald(t testing.TB, bin, config, logPath string, flags ...string) *heraldProcess {
	t.Helper()
	logs, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--config", config}, flags...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Env = append(os.Environ(), "HERALD_ADMIN_TOKEN=crash-test-token")
	cmd.Env = append(cmd.Env, clusterSecrets...) // processes of one cluster share their secrets
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &heraldProcess{cmd: cmd, logs: logs}
}

func (p *heraldProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.logs.Close()
}

func (p *heraldProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.logs.Close()
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("herald serve never became ready (last answer: %s)", last)
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// connectEmbeddedAfterRestart starts the embedded server of a killed serve
// alone (a CLI command with the same configuration does), to look at its
// state, and connects to it; the returned connection's Close stops it.
func connectEmbeddedAfterRestart(t *testing.T, bin, config, data string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	// herald dlq list opens the embedded server on the data directory and
	// leaves it when done; reading the snapshot needs the same, so use a
	// server of our own on the store instead.
	opts := &server.Options{JetStream: true, StoreDir: filepath.Join(data, "jetstream"), Port: -1, Host: "127.0.0.1", NoSigs: true}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("could not open the store of the killed serve")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc.SetClosedHandler(func(*nats.Conn) { ns.Shutdown(); ns.WaitForShutdown() })
	js, _ := jetstream.New(nc)
	return nc, js
}

// snapshotState returns the fan-out state of the latest update in an
// incident's snapshot ("" when there is none).
func snapshotState(t *testing.T, js jetstream.JetStream, incidentID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, dispatcher.BucketIncidents)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, incidentID)
	if err != nil {
		return ""
	}
	var snap dispatcher.Snapshot
	if err := json.Unmarshal(e.Value(), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Updates) == 0 {
		return ""
	}
	return snap.Updates[len(snap.Updates)-1].State
}

// connectEmbedded connects to the embedded server of a running serve, as
// the CLI does.
func connectEmbedded(t *testing.T, data string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(data, "embedded-nats.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ URL, Token string }
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(info.URL, nats.Token(info.Token), nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	return nc, js
}

// TestCrashRecovery runs `herald serve` as a child process, publishes an
// update for 20 000 subscribers with webhook endpoints, kills the process
// with SIGKILL in the middle of the fan-out and again in the middle of the
// deliveries, restarts it, and checks that every endpoint got the update
// and that duplicates never exceed the sends in flight at the kills.
//
// It takes about a minute; `go test -short` skips it.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	bin, err := buildHerald()
	if err != nil {
		t.Fatal(err)
	}
	const subscriberCount = 20000
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	recv := newCrashReceiver(t, 2*time.Millisecond)

	// Subscribers, imported with the CLI before the first start.
	subsFile := filepath.Join(dir, "subscribers.jsonl")
	f, err := os.Create(subsFile)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range subscriberCount {
		fmt.Fprintf(w, `{"id":"m%05d","locale":"fr-FR","endpoints":[{"id":"wh","channel":"webhook","url":"%s/h/%d","secret":%q}]}`+"\n", i, recv.srv.URL, i, crashSecret)
	}
	w.Flush()
	f.Close()

	apiAddr := freeAddr(t)
	config := filepath.Join(dir, "herald.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`
data: %s
listen: %s
public_listen: %s
log: {level: info, format: json}
nats: {listen: %s}
webhook: {allow_http: true, allow: ["127.0.0.1/32"], timeout: 10s}
dispatch:
  fanout_ack_wait: 3s
  shutdown_timeout: 2s
  duplicate_window: %s
  # Small batches and one publish in flight: a fan-out long enough to be
  # killed in its middle.
  batch_size: %d
  fanout_max_pending: 1
  channels:
    webhook: {concurrency: 64, ack_wait: 3s, retry: {schedule: [1s], jitter: 0}}
    email: {ack_wait: 3s}
    sms: {ack_wait: 3s}
    slack: {ack_wait: 3s}
`, data, apiAddr, freeAddr(t), freeAddr(t), crashWindow, crashBatch)), 0o600)

	out, err := exec.Command(bin, "subscribers", "import", "--config", config, "--progress", "never", subsFile).CombinedOutput()
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	t.Logf("import: %s", strings.TrimSpace(string(out)))

	logPath := filepath.Join(dir, "herald.log")
	base := "http://" + apiAddr
	p := startHerald(t, bin, config, logPath)
	defer func() {
		if t.Failed() {
			logs, _ := os.ReadFile(logPath)
			if dst := os.Getenv("HERALD_TEST_KEEP_LOGS"); dst != "" {
				_ = os.WriteFile(dst, logs, 0o600)
			}
			if len(logs) > 20000 {
				logs = logs[len(logs)-20000:]
			}
			t.Logf("herald logs (tail):\n%s", logs)
		}
	}()
	waitReady(t, base)

	// Kill 1: in the middle of the fan-out, seen from the DELIVERIES stream.
	nc, js := connectEmbedded(t, data)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ev := `{"id":"CRASH-1:1","incident_id":"CRASH-1","sequence":1,"status":"investigating","components":["oney"],"title":{"fr":"Panne","en":"Outage"},"body":{"fr":"Nous enquêtons.","en":"Investigating."}}`
	if _, err := dispatcher.PublishEvent(ctx, js, []byte(ev), 0); err != nil {
		t.Fatal(err)
	}
	deliveries, err := js.Stream(ctx, dispatcher.StreamDeliveries)
	if err != nil {
		t.Fatal(err)
	}
	const batches = subscriberCount / crashBatch
	var jobsAtKill uint64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		info, err := deliveries.Info(ctx)
		if err == nil && info.State.Msgs > batches/10 {
			jobsAtKill = info.State.Msgs
			break
		}
	}
	kill1 := time.Now()
	p.kill()
	nc.Close()
	// Batches are consumed as they come (and leave the work queue): the
	// fan-out had not ended when the stream still held fewer than all and
	// the snapshot still said fanning_out.
	nc, js = connectEmbeddedAfterRestart(t, bin, config, data)
	snap := snapshotState(t, js, "CRASH-1")
	t.Logf("kill 1: %d of %d batches stored, %d endpoints served, snapshot %q", jobsAtKill, batches, recv.distinct(), snap)
	if jobsAtKill == 0 || jobsAtKill >= batches || snap != "fanning_out" {
		t.Fatalf("the first kill did not land in the middle of the fan-out (%d of %d batches, snapshot %q)", jobsAtKill, batches, snap)
	}
	nc.Close()
	// Resume past the window: the restarted fan-out republishes batches
	// the stream no longer dedupes; their copies take leases and find the
	// log.
	time.Sleep(crashWindow + time.Second)

	// Restart; kill 2 in the middle of the deliveries.
	p = startHerald(t, bin, config, logPath)
	waitReady(t, base)
	for deadline := time.Now().Add(2 * time.Minute); recv.distinct() < subscriberCount/2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	served := recv.distinct()
	kill2 := time.Now()
	p.kill()
	t.Logf("kill 2: %d of %d endpoints served", served, subscriberCount)
	if served == 0 || served >= subscriberCount {
		t.Fatal("the second kill did not land in the middle of the deliveries")
	}

	// Restart and let it finish.
	p = startHerald(t, bin, config, logPath)
	defer p.stop()
	waitReady(t, base)
	for deadline := time.Now().Add(3 * time.Minute); recv.distinct() < subscriberCount && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let stragglers (a duplicate in the making) arrive

	recv.mu.Lock()
	missing, dupSends, badSigs, retried := 0, 0, recv.bad, 0
	for i := range subscriberCount {
		id := dispatcher.DeliveryID("CRASH-1:1", fmt.Sprintf("m%05d", i), "wh")
		n := recv.counts[id]
		if n == 0 {
			missing++
		}
		if n > 1 {
			dupSends += n - 1
		}
		if i%flakyEvery == 0 && recv.refused[id] > 0 && n > 0 {
			retried++
		}
	}
	recv.mu.Unlock()
	t.Logf("endpoints refusing their first attempt: %d, served on a retry: %d", subscriberCount/flakyEvery, retried)
	if retried != subscriberCount/flakyEvery {
		t.Errorf("%d of the %d endpoints that refused their first attempt got a retry through", retried, subscriberCount/flakyEvery)
	}
	inflight1 := recv.inFlightAt(kill1, 50*time.Millisecond)
	inflight2 := recv.inFlightAt(kill2, 50*time.Millisecond)
	t.Logf("endpoints: %d, missing: %d, duplicate sends: %d, sends in flight at the kills: %d + %d, bad signatures: %d",
		subscriberCount, missing, dupSends, inflight1, inflight2, badSigs)
	if missing != 0 {
		t.Errorf("%d endpoints never got the update", missing)
	}
	if dupSends > inflight1+inflight2 {
		t.Errorf("%d duplicate sends, more than the %d sends in flight at the kills", dupSends, inflight1+inflight2)
	}
	if badSigs != 0 {
		t.Errorf("%d requests with a bad signature", badSigs)
	}
}

// TestGracefulShutdown stops `herald serve` with SIGTERM while webhooks are
// being sent to a slow receiver: the process exits 0, the sends in flight
// finish and are recorded, so that after a restart every endpoint has the
// update exactly once.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("process test skipped in -short mode")
	}
	bin, err := buildHerald()
	if err != nil {
		t.Fatal(err)
	}
	const subscriberCount = 40
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	recv := newCrashReceiver(t, 300*time.Millisecond)
	var subs strings.Builder
	for i := range subscriberCount {
		fmt.Fprintf(&subs, `{"id":"m%02d","locale":"en","endpoints":[{"id":"wh","channel":"webhook","url":"%s/h/%d","secret":%q}]}`+"\n", i, recv.srv.URL, i, crashSecret)
	}
	subsFile := filepath.Join(dir, "subscribers.jsonl")
	if err := os.WriteFile(subsFile, []byte(subs.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	apiAddr := freeAddr(t)
	config := filepath.Join(dir, "herald.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
data: %s
listen: %s
public_listen: %s
nats: {listen: none}
webhook: {allow_http: true, allow: ["127.0.0.1/32"]}
dispatch:
  shutdown_timeout: 10s
  channels:
    webhook: {concurrency: 8}
`, data, apiAddr, freeAddr(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "subscribers", "import", "--config", config, subsFile).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "herald.log")
	base := "http://" + apiAddr
	p := startHerald(t, bin, config, logPath)
	defer func() {
		if t.Failed() || os.Getenv("HERALD_TEST_LOGS") != "" {
			logs, _ := os.ReadFile(logPath)
			t.Logf("herald logs:\n%s", logs)
		}
	}()
	waitReady(t, base)
	ev := `{"id":"TERM-1:1","incident_id":"TERM-1","sequence":1,"status":"investigating","title":"Outage","body":"Investigating."}`
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/incidents", strings.NewReader(ev))
	req.Header.Set("Authorization", "Bearer crash-test-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
	// SIGTERM once sends are under way (a send takes 300 ms).
	for deadline := time.Now().Add(30 * time.Second); ; {
		recv.mu.Lock()
		started := len(recv.spans)
		recv.mu.Unlock()
		if started > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopAt := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = p.cmd.Wait()
	p.logs.Close()
	if err != nil {
		t.Fatalf("herald serve exited with %v after SIGTERM", err)
	}
	servedAtStop := recv.distinct()
	inFlight := recv.inFlightAt(stopAt, 0)
	if servedAtStop >= subscriberCount {
		t.Fatal("every delivery finished before SIGTERM: the test did not stop mid-delivery")
	}
	logs, _ := os.ReadFile(logPath)
	if !strings.Contains(string(logs), "stopped") {
		t.Error("no clean stop in the logs")
	}

	p = startHerald(t, bin, config, logPath)
	defer p.stop()
	waitReady(t, base)
	for deadline := time.Now().Add(time.Minute); recv.distinct() < subscriberCount && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a duplicate in the making would arrive
	recv.mu.Lock()
	dups := 0
	for _, n := range recv.counts {
		dups += n - 1
	}
	recv.mu.Unlock()
	t.Logf("served before SIGTERM: %d (%d in flight at the signal), after restart: %d of %d, duplicates: %d",
		servedAtStop, inFlight, recv.distinct(), subscriberCount, dups)
	if recv.distinct() != subscriberCount {
		t.Errorf("%d of %d endpoints served", recv.distinct(), subscriberCount)
	}
	if dups != 0 {
		t.Errorf("%d duplicate sends after a graceful stop", dups)
	}
}
