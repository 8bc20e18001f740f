package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hostsSink is a webhook receiver reachable at many loopback addresses
// (127.10.x.y: one listener bound to every address) that answers each
// request after a delay: merchant endpoints on many hosts.
type hostsSink struct {
	port string
	n    atomic.Int64
}

func newHostsSink(b *testing.B, delay time.Duration) *hostsSink {
	s := &hostsSink{}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		if delay > 0 {
			time.Sleep(delay)
		}
		s.n.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	_, s.port, _ = net.SplitHostPort(ln.Addr().String())
	return s
}

// url returns the URL of endpoint i on host number host.
func (s *hostsSink) url(host, i int) string {
	return fmt.Sprintf("http://127.10.%d.%d:%s/h/%d", host/250, host%250+1, s.port, i)
}

// serveBench is one `herald serve` process of a benchmark, with n webhook
// subscribers imported.
type serveBench struct {
	p              *heraldProcess
	config, data   string
	base           string
	cluster        *natsCluster
	importDuration time.Duration
}

// serveOptions shape a benchmark's serve: extra top-level YAML, extra
// flags, and a cluster to use instead of the embedded server.
type serveOptions struct {
	yaml    string
	flags   []string
	cluster *natsCluster
}

func startServeBench(b *testing.B, bin string, sink *hostsSink, n, hosts int, o serveOptions) *serveBench {
	b.Helper()
	dir := b.TempDir()
	s := &serveBench{config: filepath.Join(dir, "herald.yaml"), data: filepath.Join(dir, "data"), cluster: o.cluster}
	listen := freeAddr(b)
	s.base = "http://" + listen
	nats := fmt.Sprintf("nats: {listen: %s}", freeAddr(b))
	if o.cluster != nil {
		nats = fmt.Sprintf(`nats: {url: "%s", replicas: 3}`, o.cluster.urls())
	}
	conf := fmt.Sprintf(`
data: %s
listen: %s
public_listen: %s
log: {level: warn, format: json}
%s
webhook: {allow_http: true, allow: ["127.0.0.0/8"], timeout: 10s}
%s
`, s.data, listen, freeAddr(b), nats, o.yaml+"\n"+os.Getenv("HERALD_BENCH_YAML"))
	if err := os.WriteFile(s.config, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	subs := filepath.Join(dir, "subscribers.jsonl")
	f, err := os.Create(subs)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, `{"id":"m%06d","locale":"fr-FR","endpoints":[{"id":"wh","channel":"webhook","url":"%s","secret":%q}]}`+"\n", i, sink.url(i%hosts, i), crashSecret)
	}
	_ = w.Flush()
	f.Close()
	start := time.Now()
	imp := exec.Command(bin, "subscribers", "import", "--config", s.config, "--progress", "never", subs)
	imp.Env = append(os.Environ(), clusterSecrets...)
	if out, err := imp.CombinedOutput(); err != nil {
		b.Fatalf("import: %v\n%s", err, out)
	}
	s.importDuration = time.Since(start)
	logPath := filepath.Join(dir, "herald.log")
	s.p = startHerald(b, bin, s.config, logPath, o.flags...)
	b.Cleanup(func() { s.p.stop() })
	waitReady(b, s.base)
	return s
}

// publish publishes update seq of incident inc through the admin API and
// waits until the sink got n more requests; it returns how long that took.
func (s *serveBench) deliver(b *testing.B, sink *hostsSink, inc string, seq, n int) time.Duration {
	b.Helper()
	before := sink.n.Load()
	ev := fmt.Sprintf(`{"id":"%s:%d","incident_id":%q,"sequence":%d,"status":"investigating","title":{"fr":"Panne","en":"Outage"},"body":{"fr":"Nous enquêtons.","en":"Investigating."}}`, inc, seq, inc, seq)
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/incidents", strings.NewReader(ev))
	req.Header.Set("Authorization", "Bearer crash-test-token")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("publish: %d", resp.StatusCode)
	}
	for deadline := time.Now().Add(10 * time.Minute); sink.n.Load()-before < int64(n); {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d delivered", sink.n.Load()-before, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// peakRSS returns the serve process's peak resident set, in MB.
func (s *serveBench) peakRSS(b *testing.B) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkServe runs `herald serve` (embedded NATS, default
// configuration) as its own process and fans one update out to webhook
// endpoints on 1 000 loopback hosts: 10 000 answering at once, 10 000 and
// 100 000 answering after 200 ms. It reports the deliveries per second and
// the peak resident set of the serve process (its embedded NATS server
// included), against the 100 MB goal. HERALD_BENCH_BIG=0 leaves out the
// 100 000 run; HERALD_BENCH_YAML adds configuration to serve's file;
// HERALD_BENCH_MEMSTATS=1 logs the process's Go memory statistics.
func BenchmarkServe(b *testing.B) {
	bin, err := buildHerald()
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name  string
		n     int
		delay time.Duration
	}{
		{"fast/10000", 10_000, 0},
		{"slow/10000", 10_000, 200 * time.Millisecond},
		{"slow/100000", 100_000, 200 * time.Millisecond},
	}
	for _, c := range cases {
		if c.n > 10_000 && os.Getenv("HERALD_BENCH_BIG") == "0" {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			sink := newHostsSink(b, c.delay)
			s := startServeBench(b, bin, sink, c.n, 1000, serveOptions{})
			var took time.Duration
			if os.Getenv("HERALD_BENCH_MEMSTATS") != "" {
				time.Sleep(2 * time.Second)
				b.Logf("before the update: peak RSS %.1f MB", s.peakRSS(b))
			}
			b.ResetTimer()
			for i := range b.N {
				took += s.deliver(b, sink, "SERVE", i+1, c.n)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*c.n)/took.Seconds(), "deliveries/s")
			b.ReportMetric(s.peakRSS(b), "peak_rss_MB")
			b.ReportMetric(s.importDuration.Seconds(), "import_s")
			if os.Getenv("HERALD_BENCH_MEMSTATS") != "" {
				body, _ := httpGet(s.base+"/metrics", "")
				for _, line := range strings.Split(body, "\n") {
					if strings.HasPrefix(line, "go_memstats_") || strings.HasPrefix(line, "go_goroutines") || strings.HasPrefix(line, "process_resident") {
						b.Log(line)
					}
				}
			}
		})
	}
}

// BenchmarkServeCluster delivers 20 000 webhooks (an instant sink on 1 000
// hosts) with one `herald serve` on a three-node JetStream cluster (R3,
// nats-server processes), and, in the same run, with one `herald serve` on
// its embedded single node: the baseline. It reports both rates and the
// ratio cluster/single.
func BenchmarkServeCluster(b *testing.B) {
	bin, err := buildHerald()
	if err != nil {
		b.Fatal(err)
	}
	const n = 20_000
	sink := newHostsSink(b, 0)
	single := startServeBench(b, bin, sink, n, 1000, serveOptions{})
	cluster := startNATSCluster(b)
	r3 := startServeBench(b, bin, sink, n, 1000, serveOptions{cluster: cluster})
	var one, three time.Duration
	b.ResetTimer()
	for i := range b.N {
		one += single.deliver(b, sink, "SINGLE", i+1, n)
		three += r3.deliver(b, sink, "R3", i+1, n)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*n)/one.Seconds(), "single_deliveries/s")
	b.ReportMetric(float64(b.N*n)/three.Seconds(), "r3_deliveries/s")
	b.ReportMetric(one.Seconds()/three.Seconds(), "ratio")
}

// BenchmarkServeSyncAlways delivers 20 000 webhooks (an instant sink on
// 1 000 hosts) with `herald serve --sync-always` (every JetStream write
// fsynced) and, in the same run, with the default (fsync every two
// minutes): the price of surviving a power cut without losing an
// acknowledged write.
func BenchmarkServeSyncAlways(b *testing.B) {
	bin, err := buildHerald()
	if err != nil {
		b.Fatal(err)
	}
	const n = 20_000
	sink := newHostsSink(b, 0)
	def := startServeBench(b, bin, sink, n, 1000, serveOptions{})
	always := startServeBench(b, bin, sink, n, 1000, serveOptions{flags: []string{"--sync-always"}})
	var d1, d2 time.Duration
	b.ResetTimer()
	for i := range b.N {
		d1 += def.deliver(b, sink, "DEFAULT", i+1, n)
		d2 += always.deliver(b, sink, "SYNC", i+1, n)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*n)/d1.Seconds(), "default_deliveries/s")
	b.ReportMetric(float64(b.N*n)/d2.Seconds(), "sync_always_deliveries/s")
	b.ReportMetric(d1.Seconds()/d2.Seconds(), "ratio")
}
