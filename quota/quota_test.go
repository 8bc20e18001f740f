package quota

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/natstest"
)

func TestTakeUpToTheLimitAcrossCounters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := natstest.Connect(t)
	// Two counters over one bucket stand for two processes.
	a, err := Open(ctx, js, Config{Bucket: "q"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, js, Config{Bucket: "q"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for i := range 20 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			_, ok, err := c.Take(ctx, "k", 7)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				taken++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if taken != 7 {
		t.Fatalf("%d taken, want 7", taken)
	}
	if n, err := a.Count(ctx, "k"); err != nil || n != 7 {
		t.Fatalf("Count = %d, %v", n, err)
	}
	if n, err := a.Count(ctx, "none"); err != nil || n != 0 {
		t.Fatalf("Count(none) = %d, %v", n, err)
	}
	if n, ok, err := a.Take(ctx, "free", 0); err != nil || !ok || n != 1 {
		t.Fatalf("no limit: %d %v %v", n, ok, err)
	}
}

func TestKeyAndWindow(t *testing.T) {
	t.Parallel()
	if k := Key("sms", "m_1042", "20260504"); k != "sms.m_1042.20260504" {
		t.Fatalf("plain key %q", k)
	}
	k := Key("ip", "192.0.2.1")
	if strings.Contains(k, "192") || !strings.HasPrefix(k, "ip.h") {
		t.Fatalf("the IP is not digested: %q", k)
	}
	if Key("a", "x@y.example") == Key("a", "z@y.example") {
		t.Fatal("different addresses, same key")
	}
	day := time.Date(2026, 5, 4, 23, 59, 0, 0, time.FixedZone("", 3600))
	if w := Window(day, 24*time.Hour); w != "20260504" {
		t.Fatalf("day window %q", w)
	}
	t1 := time.Unix(3600*10+5, 0)
	if Window(t1, time.Hour) != Window(t1.Add(50*time.Minute), time.Hour) || Window(t1, time.Hour) == Window(t1.Add(time.Hour), time.Hour) {
		t.Fatal("hour windows wrong")
	}
}

func TestOpenRefusesNoBucket(t *testing.T) {
	t.Parallel()
	_, js := natstest.Connect(t)
	if _, err := Open(context.Background(), js, Config{}); err == nil {
		t.Fatal("no bucket accepted")
	}
}
