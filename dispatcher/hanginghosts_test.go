package dispatcher

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/channels"
	"github.com/heraldhq/herald/channels/webhook"
	"github.com/heraldhq/herald/subscribers"
)

// hostFarm is many webhook hosts on one machine: one HTTP server listening
// on an address of 127.0.0.0/8 per host (Linux routes the whole range to
// the loopback interface). Every tenth host hangs until the client gives up;
// the others answer after a delay.
type hostFarm struct {
	hosts []string // host:port
	delay time.Duration

	release chan struct{}
	// firstHang is when the first request reached a hanging host (Unix
	// nanoseconds); lastHealthy when the last healthy answer went out.
	firstHang   atomic.Int64
	lastHealthy atomic.Int64
	healthy     atomic.Int64

	mu       sync.Mutex
	hangHits map[string][]time.Time // hanging host → when its requests came
	served   []time.Duration        // healthy answers, since start
	start    time.Time
}

// hangs reports whether host i of the farm hangs.
func hangs(i int) bool { return i%10 == 0 }

func newHostFarm(t *testing.T, n int, delay time.Duration) *hostFarm {
	t.Helper()
	f := &hostFarm{delay: delay, release: make(chan struct{}), hangHits: map[string][]time.Time{}}
	hanging := map[string]bool{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local := r.Context().Value(http.LocalAddrContextKey).(net.Addr).String()
		if hanging[local] {
			now := time.Now()
			f.firstHang.CompareAndSwap(0, now.UnixNano())
			f.mu.Lock()
			f.hangHits[local] = append(f.hangHits[local], now)
			f.mu.Unlock()
			select {
			case <-f.release:
			case <-r.Context().Done():
			}
			return
		}
		timer := time.NewTimer(f.delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusNoContent)
		now := time.Now()
		f.lastHealthy.Store(now.UnixNano())
		f.healthy.Add(1)
		f.mu.Lock()
		f.served = append(f.served, now.Sub(f.start))
		f.mu.Unlock()
	})}
	var lns []net.Listener
	for i := range n {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.42.%d.%d:0", i/250, i%250+1))
		if err != nil {
			t.Fatalf("listening on a loopback address of 127.0.0.0/8: %v", err)
		}
		lns = append(lns, ln)
		f.hosts = append(f.hosts, ln.Addr().String())
		hanging[ln.Addr().String()] = hangs(i)
	}
	for _, ln := range lns { // once hanging is complete: it is only read from now on
		go func() { _ = srv.Serve(ln) }()
	}
	t.Cleanup(func() { _ = srv.Close() })
	t.Cleanup(func() { close(f.release) }) // runs first: frees the hanging handlers
	return f
}

// TestHangingHostsDoNotDelayTheOthers is promise 4 at scale: 2 000 webhook
// endpoints on 200 hosts, a tenth of the hosts hanging until the send
// times out, the others answering in 200 ms. Every healthy endpoint is
// served before the first hanging send times out.
//
// The channel runs 160 sends at once, fewer than the 200 endpoints of the
// hanging hosts: an engine that held a worker for each target waiting for
// its destination, or that let a new destination take its full share of
// slots before it answered anything, would have every worker stuck on a
// hanging host, and the healthy endpoints would wait for the timeout.
// Per-destination slots start at initialLimit and grow as a host answers,
// so the hanging hosts hold 2 × 20 sends and the queued targets hold none.
func TestHangingHostsDoNotDelayTheOthers(t *testing.T) {
	t.Parallel()
	const (
		hosts        = 200
		perHost      = 10
		concurrency  = 160
		answerDelay  = 200 * time.Millisecond
		sendTimeout  = 15 * time.Second
		healthyHosts = hosts - hosts/10
	)
	b := setup(t, bundleOpts{
		webhook: func(c *webhook.Config) {
			c.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			c.Timeout = sendTimeout
		},
		cfg: func(c *Config) {
			c.Channels[channels.Webhook] = ChannelConfig{Concurrency: concurrency}
		},
	})
	farm := newHostFarm(t, hosts, answerDelay)
	putAll(t, b, hosts*perHost, func(i int) *subscribers.Subscriber {
		host := farm.hosts[i%hosts]
		return &subscribers.Subscriber{ID: fmt.Sprintf("m%05d", i), Locale: "en",
			Endpoints: []subscribers.Endpoint{{ID: "wh", Channel: channels.Webhook, URL: "http://" + host + "/hooks/" + fmt.Sprint(i), Secret: testSecret}}}
	})

	farm.mu.Lock()
	farm.start = time.Now()
	farm.mu.Unlock()
	b.publish(event("INC-HANG", 1, "investigating"))
	b.waitFor("every healthy endpoint served", 2*sendTimeout+30*time.Second, func() bool {
		return farm.healthy.Load() == healthyHosts*perHost
	})
	first, last := time.Unix(0, farm.firstHang.Load()), time.Unix(0, farm.lastHealthy.Load())
	farm.mu.Lock()
	served := append([]time.Duration(nil), farm.served...)
	// The sends each hanging host got before the first one timed out.
	hangHits := map[string]int{}
	for h, at := range farm.hangHits {
		for _, a := range at {
			if a.Before(first.Add(sendTimeout)) {
				hangHits[h]++
			}
		}
	}
	farm.mu.Unlock()
	sort.Slice(served, func(i, j int) bool { return served[i] < served[j] })
	t.Logf("%d healthy endpoints served: p50 %v, p99 %v, last %v after the publish; first hanging send at %v, times out at %v",
		len(served), served[len(served)/2].Round(time.Millisecond), served[len(served)*99/100].Round(time.Millisecond),
		last.Sub(farm.start).Round(time.Millisecond), first.Sub(farm.start).Round(time.Millisecond),
		first.Add(sendTimeout).Sub(farm.start).Round(time.Millisecond))
	if farm.firstHang.Load() == 0 {
		t.Fatal("no hanging host was reached")
	}
	if !last.Before(first.Add(sendTimeout)) {
		t.Errorf("the last healthy endpoint was served %v after the first hanging send began, past its %v timeout", last.Sub(first), sendTimeout)
	}
	for h, n := range hangHits {
		if n > initialLimit {
			t.Errorf("hanging host %s got %d sends before answering anything, want at most %d", h, n, initialLimit)
		}
	}
}

// putAll stores n subscribers, a few at a time, and waits for the index to
// hold them all.
func putAll(t *testing.T, b *testBundle, n int, sub func(i int) *subscribers.Subscriber) {
	t.Helper()
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
				_, err := b.d.store.Put(ctx, sub(i))
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b.waitFor("the index to hold every subscriber", 30*time.Second, func() bool { return b.d.index.Len() == n })
}
