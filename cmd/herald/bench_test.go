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
		nats = fmt.Sprintf(`nats: {url: "%s", replicas: %d}`, o.cluster.urls(), len(o.cluster.nodes))
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
	return peakRSSOf(s.p.cmd.Process.Pid)
}

// peakRSSOf returns the peak resident set of process pid, in MB (VmHWM:
// its anonymous memory and the pages of its binary it touched).
func peakRSSOf(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return float64(statusKB(string(raw), "VmHWM")) / 1024
}

// statusKB returns field (VmHWM, VmRSS...) of a /proc/<pid>/status text,
// in kB.
func statusKB(status, field string) int {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	return 0
}

// BenchmarkServe runs `herald serve` (embedded NATS, default
// configuration) as its own process and fans one update out to webhook
// endpoints on 1 000 loopback hosts: 10 000 answering at once, 10 000 and
// 100 000 answering after 200 ms. It reports the deliveries per second and
// the peak resident set of the serve process (its embedded NATS server
// included), against the 100 MB goal. The external-nats case runs the same
// slow 10 000 against a nats-server process of its own, as production
// does, and reports both processes' peaks. HERALD_BENCH_BIG=0 leaves out the
// 100 000 run; HERALD_BENCH_YAML adds configuration to serve's file;
// HERALD_BENCH_MEMSTATS=1 logs the process's Go memory statistics, and
// its resident set and Go memory statistics read when it was at its peak
// (to stderr).
func BenchmarkServe(b *testing.B) {
	bin, err := buildHerald()
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name     string
		n        int
		delay    time.Duration
		external bool
	}{
		{"fast/10000", 10_000, 0, false},
		{"slow/10000", 10_000, 200 * time.Millisecond, false},
		{"slow/10000/external-nats", 10_000, 200 * time.Millisecond, true},
		{"slow/100000", 100_000, 200 * time.Millisecond, false},
	}
	for _, c := range cases {
		if c.n > 10_000 && os.Getenv("HERALD_BENCH_BIG") == "0" {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			sink := newHostsSink(b, c.delay)
			var o serveOptions
			if c.external {
				o.cluster = startNATSNodes(b, 1)
			}
			s := startServeBench(b, bin, sink, c.n, 1000, o)
			var took time.Duration
			if os.Getenv("HERALD_BENCH_MEMSTATS") != "" {
				time.Sleep(2 * time.Second)
				b.Logf("before the update: peak RSS %.1f MB", s.peakRSS(b))
			}
			var sampled *memSampler
			if os.Getenv("HERALD_BENCH_MEMSTATS") != "" {
				sampled = sampleMemory(s.p.cmd.Process.Pid, s.base)
			}
			b.ResetTimer()
			for i := range b.N {
				took += s.deliver(b, sink, "SERVE", i+1, c.n)
			}
			b.StopTimer()
			if sampled != nil {
				sampled.stop(b)
			}
			b.ReportMetric(float64(b.N*c.n)/took.Seconds(), "deliveries/s")
			b.ReportMetric(s.peakRSS(b), "peak_rss_MB")
			if c.external {
				b.ReportMetric(peakRSSOf(o.cluster.nodes[0].cmd.Process.Pid), "nats_peak_rss_MB")
			}
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
// hosts) with one `herald serve` on its embedded single node (the
// baseline), on a nats-server process of its own (R1), and on a three-node
// JetStream cluster (R3, nats-server processes), in the same run. It
// reports each rate, the ratios to the baseline, and the CPU time per
// delivery of the serve process and of the NATS servers (all three nodes
// for R3): the JetStream cost per delivery of the capacity model.
func BenchmarkServeCluster(b *testing.B) {
	bin, err := buildHerald()
	if err != nil {
		b.Fatal(err)
	}
	const n = 20_000
	sink := newHostsSink(b, 0)
	single := startServeBench(b, bin, sink, n, 1000, serveOptions{})
	one := startNATSNodes(b, 1)
	r1 := startServeBench(b, bin, sink, n, 1000, serveOptions{cluster: one})
	three := startNATSCluster(b)
	r3 := startServeBench(b, bin, sink, n, 1000, serveOptions{cluster: three})
	var tSingle, tR1, tR3 time.Duration
	var cpuR1, natsR1, cpuR3, natsR3 time.Duration
	b.ResetTimer()
	for i := range b.N {
		tSingle += single.deliver(b, sink, "SINGLE", i+1, n)
		c0, s0 := cpuOf(r1.p.cmd.Process.Pid), one.cpu()
		tR1 += r1.deliver(b, sink, "R1", i+1, n)
		cpuR1 += cpuOf(r1.p.cmd.Process.Pid) - c0
		natsR1 += one.cpu() - s0
		c0, s0 = cpuOf(r3.p.cmd.Process.Pid), three.cpu()
		tR3 += r3.deliver(b, sink, "R3", i+1, n)
		cpuR3 += cpuOf(r3.p.cmd.Process.Pid) - c0
		natsR3 += three.cpu() - s0
	}
	b.StopTimer()
	total := float64(b.N * n)
	perDelivery := func(d time.Duration) float64 { return float64(d.Microseconds()) / total }
	b.ReportMetric(total/tSingle.Seconds(), "single_deliveries/s")
	b.ReportMetric(total/tR1.Seconds(), "r1_deliveries/s")
	b.ReportMetric(total/tR3.Seconds(), "r3_deliveries/s")
	b.ReportMetric(tSingle.Seconds()/tR3.Seconds(), "ratio")
	b.ReportMetric(perDelivery(cpuR1), "r1_serve_cpu_us/delivery")
	b.ReportMetric(perDelivery(natsR1), "r1_nats_cpu_us/delivery")
	b.ReportMetric(perDelivery(cpuR3), "r3_serve_cpu_us/delivery")
	b.ReportMetric(perDelivery(natsR3), "r3_nats_cpu_us/delivery")
}

// cpuOf returns the CPU time process pid has used (user and system), from
// /proc; 0 where there is none.
func cpuOf(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces): state is
	// field 3, utime 14 and stime 15, in clock ticks of 1/100 s.
	rest := string(raw)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// cpu returns the CPU time the cluster's nodes have used together.
func (c *natsCluster) cpu() time.Duration {
	var d time.Duration
	for _, n := range c.nodes {
		if n.cmd != nil && n.cmd.Process != nil {
			d += cpuOf(n.cmd.Process.Pid)
		}
	}
	return d
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

// memSampler reads a serve process's resident set every 20 ms while a
// benchmark runs, and its Go memory metrics every 100 ms, keeping the
// readings taken closest to the peak (HERALD_BENCH_MEMSTATS).
type memSampler struct {
	done    chan struct{}
	stopped chan struct{}
	peakKB  int
	status  string
	metrics string
}

func sampleMemory(pid int, base string) *memSampler {
	m := &memSampler{done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(m.stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var lastMetrics time.Time
		for {
			select {
			case <-m.done:
				return
			case <-tick.C:
			}
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				continue
			}
			kb := statusKB(string(raw), "VmRSS")
			var keep []string
			for _, line := range strings.Split(string(raw), "\n") {
				if strings.HasPrefix(line, "Rss") || strings.HasPrefix(line, "VmRSS") || strings.HasPrefix(line, "Threads") {
					keep = append(keep, strings.Join(strings.Fields(line), " "))
				}
			}
			if kb >= m.peakKB {
				m.peakKB, m.status = kb, strings.Join(keep, ", ")
				if time.Since(lastMetrics) > 100*time.Millisecond {
					lastMetrics = time.Now()
					body, _ := httpGet(base+"/metrics", "")
					var ms []string
					for _, line := range strings.Split(body, "\n") {
						if strings.HasPrefix(line, "go_memstats_") && !strings.Contains(line, "_total") || strings.HasPrefix(line, "go_goroutines") {
							ms = append(ms, line)
						}
					}
					m.metrics = strings.Join(ms, "\n")
				}
			}
		}
	}()
	return m
}

func (m *memSampler) stop(b *testing.B) {
	close(m.done)
	<-m.stopped
	// The benchmark's log keeps ten lines: the readings go to stderr.
	fmt.Fprintf(os.Stderr, "%s at the peak: %s\n%s\n", b.Name(), m.status, m.metrics)
}
