package dispatcher

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkersReuseAndBound: a task pushed while a goroutine is idle reuses
// it; idle goroutines exit; no more than max run at once, the others wait
// in the queue and all run.
func TestWorkersReuseAndBound(t *testing.T) {
	t.Parallel()
	var ran atomic.Int32
	release := make(chan struct{})
	block := atomic.Bool{}
	w := newWorkers(3, 300*time.Millisecond, func(*task) {
		if block.Load() {
			<-release
		}
		ran.Add(1)
	})
	for i := range 4 {
		w.push(&task{})
		waitUntil(t, "the task to run", func() bool { return ran.Load() == int32(i+1) })
		time.Sleep(20 * time.Millisecond) // the goroutine goes back to waiting
		if n := w.running(); n != 1 {
			t.Fatalf("after sequential task %d: %d goroutines, want the same 1", i, n)
		}
	}
	waitUntil(t, "idle goroutines to exit", func() bool { return w.running() == 0 })

	block.Store(true)
	for range 10 {
		w.push(&task{})
	}
	if n := w.running(); n != 3 {
		t.Fatalf("%d goroutines for 10 blocked tasks, want the bound 3", n)
	}
	close(release)
	waitUntil(t, "every task", func() bool { return ran.Load() == 14 })
	waitUntil(t, "idle goroutines to exit", func() bool { return w.running() == 0 })
}

// TestWorkersEveryTaskOnce: pushes racing with goroutines that time out run
// every task exactly once.
func TestWorkersEveryTaskOnce(t *testing.T) {
	t.Parallel()
	const n = 20000
	var mu sync.Mutex
	seen := map[*task]int{}
	var wg sync.WaitGroup
	wg.Add(n)
	w := newWorkers(8, time.Microsecond, func(tk *task) {
		mu.Lock()
		seen[tk]++
		mu.Unlock()
		wg.Done()
	})
	var pushers sync.WaitGroup
	for range 4 {
		pushers.Go(func() {
			for i := range n / 4 {
				w.push(&task{})
				if i%64 == 0 {
					time.Sleep(10 * time.Microsecond) // let goroutines time out
				}
			}
		})
	}
	pushers.Wait()
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct tasks ran, want %d", len(seen), n)
	}
	for _, c := range seen {
		if c != 1 {
			t.Fatalf("a task ran %d times", c)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
