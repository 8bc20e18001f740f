package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/dispatcher"
)

// buildNATSServer compiles the nats-server of the module Herald depends on,
// once per test run: no download.
var buildNATSServer = sync.OnceValues(func() (string, error) {
	return buildBinary("nats-server-bin", "nats-server", "github.com/nats-io/nats-server/v2")
})

// natsNode is one nats-server process of a test cluster.
type natsNode struct {
	name, conf, url string
	bin, logPath    string
	cmd             *exec.Cmd
	exited          chan struct{} // closed when cmd has been waited for
}

// natsCluster is three nats-server processes forming a JetStream cluster,
// configured as examples/nats-cluster is, on loopback ports (or one
// nats-server process alone: startNATSNodes(t, 1)).
type natsCluster struct {
	nodes []*natsNode
}

func startNATSCluster(t testing.TB) *natsCluster {
	t.Helper()
	return startNATSNodes(t, 3)
}

// startNATSNodes starts n nats-server processes with JetStream, routed
// into one cluster when n > 1.
func startNATSNodes(t testing.TB, n int) *natsCluster {
	t.Helper()
	bin, err := buildNATSServer()
	if err != nil {
		t.Fatal(err)
	}
	// The ports are free when picked, not when the nodes bind them: a test
	// running beside this one may take one meanwhile, and the node that
	// cannot bind exits at once. Then the cluster starts again on others.
	for attempt := 1; ; attempt++ {
		c := newNATSNodes(t, bin, n)
		for _, node := range c.nodes {
			node.start(t)
		}
		if exited := c.exitedAtStart(); exited == nil {
			t.Cleanup(func() {
				for _, n := range c.nodes {
					n.kill()
				}
				if t.Failed() {
					for _, n := range c.nodes {
						logs, _ := os.ReadFile(n.logPath)
						if len(logs) > 4000 {
							logs = logs[len(logs)-4000:]
						}
						t.Logf("%s logs (tail):\n%s", n.name, logs)
					}
				}
			})
			c.waitReady(t)
			return c
		} else if attempt == 3 {
			logs, _ := os.ReadFile(exited.logPath)
			t.Fatalf("nats-server %s exited at start three times:\n%s", exited.name, logs)
		}
		for _, node := range c.nodes {
			node.kill()
		}
	}
}

// exitedAtStart returns a node that exited within a second of its start
// (a port taken), or nil.
func (c *natsCluster) exitedAtStart() *natsNode {
	time.Sleep(time.Second)
	for _, n := range c.nodes {
		select {
		case <-n.exited:
			return n
		default:
		}
	}
	return nil
}

// newNATSNodes writes the configurations of n nodes on fresh ports, in
// one cluster when n > 1.
func newNATSNodes(t testing.TB, bin string, n int) *natsCluster {
	t.Helper()
	dir := t.TempDir()
	var clients, routes []string
	for range n {
		clients = append(clients, freeAddr(t))
		routes = append(routes, freeAddr(t))
	}
	c := &natsCluster{}
	for i := range n {
		node := &natsNode{name: fmt.Sprintf("n%d", i+1), url: "nats://" + clients[i], bin: bin, logPath: filepath.Join(dir, fmt.Sprintf("n%d.log", i+1))}
		var rs strings.Builder
		for _, r := range routes {
			fmt.Fprintf(&rs, "    nats-route://%s\n", r)
		}
		node.conf = filepath.Join(dir, node.name+".conf")
		conf := fmt.Sprintf(`server_name: %s
listen: %s
jetstream {
  store_dir: %s
  max_memory_store: 256M
  max_file_store: 2G
}
`, node.name, clients[i], filepath.Join(dir, node.name))
		if n > 1 {
			conf += fmt.Sprintf(`cluster {
  name: herald
  listen: %s
  routes: [
%s  ]
}
`, routes[i], rs.String())
		}
		if err := os.WriteFile(node.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, node)
	}
	return c
}

func (n *natsNode) start(t testing.TB) {
	t.Helper()
	logs, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(n.bin, "--config", n.conf)
	n.cmd.Stdout, n.cmd.Stderr = logs, logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	n.exited = done
	go func() { _ = n.cmd.Wait(); logs.Close(); close(done) }()
}

// kill stops the node with SIGKILL (nothing flushed, no goodbye).
func (n *natsNode) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-n.exited:
		case <-time.After(time.Second):
		}
	}
}

// urls is the cluster's client URLs, comma separated.
func (c *natsCluster) urls() string {
	var u []string
	for _, n := range c.nodes {
		u = append(u, n.url)
	}
	return strings.Join(u, ",")
}

// connect opens a connection to the cluster.
func (c *natsCluster) connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return nc, js
}

// waitReady waits until JetStream answers through the cluster (a meta
// leader is elected).
func (c *natsCluster) waitReady(t testing.TB) {
	t.Helper()
	nc, js := c.connect(t)
	defer nc.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the NATS cluster never became ready: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// leaderOf returns the node leading stream.
func (c *natsCluster) leaderOf(t *testing.T, js jetstream.JetStream, stream string) *natsNode {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := js.Stream(ctx, stream)
		var leader string
		if err == nil {
			if info, err := s.Info(ctx); err == nil && info.Cluster != nil {
				leader = info.Cluster.Leader
			}
		}
		cancel()
		for _, n := range c.nodes {
			if n.name == leader {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader of %s", stream)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clusterHerald is one `herald serve` of a cluster test.
type clusterHerald struct {
	config, logPath, base string
}

// newClusterHerald writes the configuration of a herald serve process on
// the cluster, with extra dispatch settings.
func newClusterHerald(t *testing.T, bin string, c *natsCluster, name, dispatch string) *clusterHerald {
	t.Helper()
	dir := t.TempDir()
	h := &clusterHerald{config: filepath.Join(dir, "herald.yaml"), logPath: filepath.Join(dir, "herald.log")}
	listen := freeAddr(t)
	h.base = "http://" + listen
	conf := fmt.Sprintf(`
data: %s
listen: %s
public_listen: %s
log: {level: info, format: json}
nats: {url: "%s", replicas: 3}
webhook: {allow_http: true, allow: ["127.0.0.1/32"], timeout: 10s}
%s
`, filepath.Join(dir, "data"), listen, freeAddr(t), c.urls(), dispatch)
	if err := os.WriteFile(h.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := os.ReadFile(h.logPath)
			if dst := os.Getenv("HERALD_TEST_KEEP_LOGS"); dst != "" {
				_ = os.WriteFile(dst+"."+name, logs, 0o600)
			}
			if len(logs) > 8000 {
				logs = logs[len(logs)-8000:]
			}
			t.Logf("%s logs (tail):\n%s", name, logs)
		}
	})
	return h
}

func (h *clusterHerald) start(t *testing.T, bin string) *heraldProcess {
	t.Helper()
	p := startHerald(t, bin, h.config, h.logPath)
	waitReady(t, h.base)
	return p
}

// clusterRun is a cluster test's two `herald serve` processes, started on
// the cluster with the subscribers imported and the updates published.
type clusterRun struct {
	a, b   *clusterHerald
	pa, pb *heraldProcess
	js     jetstream.JetStream
	ctx    context.Context
}

// startClusterRun starts herald-a and herald-b on cluster with the extra
// dispatch settings, imports n subscribers of the receiver at url and
// publishes one update per cluster component. The processes in pa and pb
// when the test ends are stopped.
func startClusterRun(t *testing.T, bin string, cluster *natsCluster, dispatch, url string, n int) *clusterRun {
	t.Helper()
	r := &clusterRun{
		a: newClusterHerald(t, bin, cluster, "herald-a", dispatch),
		b: newClusterHerald(t, bin, cluster, "herald-b", dispatch),
	}
	subs := filepath.Join(t.TempDir(), "subscribers.jsonl")
	writeClusterSubscribers(t, subs, url, n, clusterComponents)
	r.pa = r.a.start(t, bin)
	t.Cleanup(func() { r.pa.stop() })
	r.pb = r.b.start(t, bin)
	t.Cleanup(func() { r.pb.stop() })
	imp := exec.Command(bin, "subscribers", "import", "--config", r.a.config, "--progress", "never", subs)
	imp.Env = append(os.Environ(), clusterSecrets...)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	_, r.js = cluster.connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	r.ctx = ctx
	for i := range clusterComponents {
		if _, err := dispatcher.PublishEvent(ctx, r.js, []byte(clusterUpdate(i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// clusterSecrets are the secrets every process of a cluster shares.
var clusterSecrets = []string{"HERALD_SECRET_KEY=" + strings.Repeat("s", 32)}

// writeClusterSubscribers writes n webhook subscribers to the receiver, one
// per endpoint, the i-th in component components[i % len(components)].
func writeClusterSubscribers(t *testing.T, path, url string, n int, components []string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, `{"id":"m%05d","locale":"fr-FR","components":[%q],"endpoints":[{"id":"wh","channel":"webhook","url":"%s/h/%d","secret":%q}]}`+"\n",
			i, components[i%len(components)], url, i, crashSecret)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// deadLetters counts the DEAD_LETTERS stream's entries.
func deadLetters(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, dispatcher.StreamDeadLetters)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// clusterUpdates are the updates of the cluster tests: one per component,
// each for a quarter of the subscribers.
var clusterComponents = []string{"oney", "3ds", "portal", "payouts"}

func clusterUpdate(i int) string {
	return fmt.Sprintf(`{"id":"CLU-%d:1","incident_id":"CLU-%d","sequence":1,"status":"investigating","components":[%q],"title":{"fr":"Panne","en":"Outage"},"body":{"fr":"Nous enquêtons.","en":"Investigating."}}`,
		i, i, clusterComponents[i])
}

// countDeliveries compares what the receiver got with the subscribers of
// the cluster tests: endpoints that never got their update, extra sends.
func countDeliveries(recv *crashReceiver, n int) (missing, dups, retried int) {
	recv.mu.Lock()
	defer recv.mu.Unlock()
	for i := range n {
		id := dispatcher.DeliveryID(fmt.Sprintf("CLU-%d:1", i%len(clusterComponents)), fmt.Sprintf("m%05d", i), "wh")
		c := recv.counts[id]
		if c == 0 {
			missing++
		}
		if c > 1 {
			dups += c - 1
		}
		if i%flakyEvery == 0 && recv.refused[id] > 0 && c > 0 {
			retried++
		}
	}
	return missing, dups, retried
}

// TestClusterChaos runs two `herald serve` processes on a three-node
// JetStream cluster (R3), 20 000 webhook endpoints over four updates, and
// during the deliveries kills with SIGKILL the NATS node that leads the
// DELIVERIES stream and one of the Herald processes, restarting both five
// seconds later. Every endpoint gets its update, signatures verify,
// duplicates stay within the sends in flight at the kills, and nothing is
// dead-lettered. `go test -short` skips it.
func TestClusterChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	start := time.Now()
	bin, err := buildHerald()
	if err != nil {
		t.Fatal(err)
	}
	cluster := startNATSCluster(t)
	const subscriberCount = 20000
	recv := newCrashReceiver(t, 2*time.Millisecond)
	dispatch := `dispatch:
  fanout_ack_wait: 5s
  shutdown_timeout: 2s
  channels:
    webhook: {concurrency: 256, ack_wait: 5s, retry: {schedule: [1s], jitter: 0}}`
	run := startClusterRun(t, bin, cluster, dispatch, recv.srv.URL, subscriberCount)
	js := run.js
	// Kill the DELIVERIES leader and a Herald process once a fifth is
	// served.
	for deadline := time.Now().Add(3 * time.Minute); recv.distinct() < subscriberCount/5 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	leader := cluster.leaderOf(t, js, dispatcher.StreamDeliveries)
	killAt := time.Now()
	leader.kill()
	run.pb.kill()
	served := recv.distinct()
	t.Logf("kills at %d of %d endpoints served: NATS node %s (DELIVERIES leader), herald-b", served, subscriberCount, leader.name)
	if served >= subscriberCount {
		t.Fatal("every delivery finished before the kills: the test did not crash mid-delivery")
	}
	time.Sleep(5 * time.Second)
	leader.start(t)
	run.pb = run.b.start(t, bin)
	for deadline := time.Now().Add(5 * time.Minute); recv.distinct() < subscriberCount && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a duplicate in the making would arrive
	missing, dups, retried := countDeliveries(recv, subscriberCount)
	inflight := recv.inFlightAt(killAt, 100*time.Millisecond)
	dead := deadLetters(t, js)
	recv.mu.Lock()
	bad := recv.bad
	recv.mu.Unlock()
	t.Logf("endpoints: %d, missing: %d, duplicate sends: %d, sends in flight at the kills: %d, bad signatures: %d, dead letters: %d, endpoints refusing their first attempt served on a retry: %d of %d; took %v",
		subscriberCount, missing, dups, inflight, bad, dead, retried, subscriberCount/flakyEvery, time.Since(start).Round(time.Second))
	if missing != 0 {
		t.Errorf("%d endpoints never got their update", missing)
	}
	if dups > inflight {
		t.Errorf("%d duplicate sends, more than the %d sends in flight at the kills", dups, inflight)
	}
	if bad != 0 {
		t.Errorf("%d requests with a bad signature", bad)
	}
	if dead != 0 {
		t.Errorf("%d dead letters", dead)
	}
	if retried != subscriberCount/flakyEvery {
		t.Errorf("%d of the %d endpoints that refused their first attempt got a retry through", retried, subscriberCount/flakyEvery)
	}
}

// TestClusterOutage stops two of the three NATS nodes (the cluster loses
// its quorum) in the middle of the deliveries, for longer than the
// duplicate window, then brings them back. Every endpoint gets its update,
// duplicates stay within the sends in flight when the quorum went, nothing
// is dead-lettered, and the outage used no attempt: every endpoint that
// answered its first attempt has a single record, attempt 1. `go test
// -short` skips it.
func TestClusterOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	start := time.Now()
	bin, err := buildHerald()
	if err != nil {
		t.Fatal(err)
	}
	cluster := startNATSCluster(t)
	const subscriberCount = 8000
	const window = 6 * time.Second
	recv := newCrashReceiver(t, 2*time.Millisecond)
	dispatch := fmt.Sprintf(`dispatch:
  duplicate_window: %s
  fanout_ack_wait: 3s
  shutdown_timeout: 2s
  channels:
    webhook: {concurrency: 128, ack_wait: 3s, retry: {schedule: [1s], jitter: 0}}
    email: {ack_wait: 3s}
    sms: {ack_wait: 3s}
    slack: {ack_wait: 3s}`, window)
	run := startClusterRun(t, bin, cluster, dispatch, recv.srv.URL, subscriberCount)
	js, ctx := run.js, run.ctx
	for deadline := time.Now().Add(3 * time.Minute); recv.distinct() < subscriberCount/4 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	outageAt := time.Now()
	cluster.nodes[1].kill()
	cluster.nodes[2].kill()
	served := recv.distinct()
	if served >= subscriberCount {
		t.Fatal("every delivery finished before the outage")
	}
	// Herald sees its infrastructure fail: degraded.
	degraded := false
	for deadline := time.Now().Add(20 * time.Second); !degraded && time.Now().Before(deadline); {
		degraded = strings.Contains(readyz(run.a.base), `"degraded"`) || strings.Contains(readyz(run.b.base), `"degraded"`)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(window + 2*time.Second)
	servedDuring := recv.distinct()
	restartAt := time.Now()
	cluster.nodes[1].start(t)
	cluster.nodes[2].start(t)
	for deadline := time.Now().Add(5 * time.Minute); recv.distinct() < subscriberCount && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	missing, dups, _ := countDeliveries(recv, subscriberCount)
	inflight := recv.inFlightAt(outageAt, 100*time.Millisecond)
	t.Logf("sends started in the outage: in its first second %d, after %d", recv.startedBetween(outageAt, outageAt.Add(time.Second)), recv.startedBetween(outageAt.Add(time.Second), restartAt))
	dead := deadLetters(t, js)
	t.Logf("endpoints: %d, served before the outage: %d, during it: %d, missing: %d, duplicate sends: %d, sends in flight when the quorum went: %d, dead letters: %d, degraded seen: %v; took %v",
		subscriberCount, served, servedDuring-served, missing, dups, inflight, dead, degraded, time.Since(start).Round(time.Second))
	if missing != 0 {
		t.Errorf("%d endpoints never got their update", missing)
	}
	if dups > inflight {
		t.Errorf("%d duplicate sends, more than the %d sends in flight when the quorum went", dups, inflight)
	}
	if dead != 0 {
		t.Errorf("%d dead letters", dead)
	}
	if !degraded {
		t.Error("no Herald process reported itself degraded during the outage")
	}
	for _, name := range []string{dispatcher.StreamDeliveries, dispatcher.StreamDeliveryLog} {
		if st, err := js.Stream(ctx, name); err == nil {
			if info, err := st.Info(ctx); err == nil {
				t.Logf("%s: replicas %d, messages %d, leader %s", name, info.Config.Replicas, info.State.Msgs, info.Cluster.Leader)
			}
		}
	}
	// Attempt numbers: the outage used none. An endpoint that answered its
	// first send has exactly one record, attempt 1 (read through the API).
	checked := 0
	for i := 1; i < subscriberCount && checked < 50; i += 97 {
		if i%flakyEvery == 0 {
			continue
		}
		recs := deliveriesOf(t, run.a.base, fmt.Sprintf("m%05d", i))
		checked++
		// Deferrals for a busy destination (every endpoint is on the
		// one receiver) use no attempt either.
		if len(recs) == 0 || recs[len(recs)-1] != "delivered/1" || slices.ContainsFunc(recs, func(r string) bool { return !strings.HasSuffix(r, "/1") || strings.HasPrefix(r, "retry") }) {
			st, _ := js.Stream(ctx, dispatcher.StreamDeliveryLog)
			info, _ := st.Info(ctx, jetstream.WithSubjectFilter(fmt.Sprintf("deliverylog.*.m%05d.*", i)))
			t.Errorf("m%05d: records %v (subjects %v), want it delivered at attempt 1, without a retry", i, recs, info.State.Subjects)
		}
	}
}

// httpGet returns the body and status of a GET of url, with a bearer
// token when one is given ("" and 0 when the request fails).
func httpGet(url, token string) (string, int) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode
}

// startedBetween counts the requests the receiver began to serve in
// [from, to).
func (r *crashReceiver) startedBetween(from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.spans {
		if !s.start.Before(from) && s.start.Before(to) {
			n++
		}
	}
	return n
}

// readyz returns the body of /readyz at base, or "".
func readyz(base string) string {
	body, _ := httpGet(base+"/readyz", "")
	return body
}

// deliveriesOf returns "outcome/attempt" of each delivery-log record of a
// subscriber, through the admin API.
func deliveriesOf(t *testing.T, base, subscriber string) []string {
	t.Helper()
	body, code := httpGet(base+"/v1/deliveries?subscriber="+subscriber, "crash-test-token")
	if code != 200 {
		t.Fatalf("deliveries of %s: %d %s", subscriber, code, body)
	}
	var answer struct {
		Items []struct {
			Attempt int    `json:"attempt"`
			Outcome string `json:"outcome"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		t.Fatalf("deliveries of %s: %v", subscriber, err)
	}
	var out []string
	for _, r := range answer.Items {
		out = append(out, fmt.Sprintf("%s/%d", r.Outcome, r.Attempt))
	}
	return out
}

// TestClusterExamples: the three-node configuration in examples/ is a valid
// nats-server configuration of a JetStream cluster whose routes name the
// three nodes, and the systemd unit starts `herald serve` with flags serve
// accepts.
func TestClusterExamples(t *testing.T) {
	t.Parallel()
	for i := 1; i <= 3; i++ {
		path := filepath.Join("..", "..", "examples", "nats-cluster", fmt.Sprintf("n%d.conf", i))
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !opts.JetStream || opts.ServerName != fmt.Sprintf("n%d", i) || opts.Cluster.Name != "herald" || len(opts.Routes) != 3 {
			t.Errorf("%s: jetstream %v, name %q, cluster %q, %d routes", path, opts.JetStream, opts.ServerName, opts.Cluster.Name, len(opts.Routes))
		}
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "examples", "systemd", "herald.service"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=\S+ serve (.*)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("the unit does not run herald serve")
	}
	args := strings.Fields(string(m[1]))
	// serve parses them (and fails later, at the missing configuration
	// file, not at a flag).
	code, _, errOut := herald(t, nil, "", append([]string{"serve"}, args...)...)
	if code == exitOK || strings.Contains(errOut, "flag provided but not defined") || !strings.Contains(errOut, "/etc/herald/herald.yaml") {
		t.Errorf("herald serve %s: exit %d, %s", strings.Join(args, " "), code, errOut)
	}
}
