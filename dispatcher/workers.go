package dispatcher

import (
	"sync"
	"time"
)

// workers runs tasks on at most max goroutines. Goroutines start on demand
// and exit after idle without work; tasks beyond max wait in a queue, which
// costs a pointer each: a target waiting for its turn holds no goroutine.
type workers struct {
	max  int
	idle time.Duration
	run  func(*task)

	mu    sync.Mutex
	queue []*task
	head  int
	// count is the goroutines running; waiting those waiting for a task
	// and not yet claimed by a push.
	count, waiting int
	hand           chan *task
}

func newWorkers(max int, idle time.Duration, run func(*task)) *workers {
	return &workers{max: max, idle: idle, run: run, hand: make(chan *task)}
}

// push runs t on a waiting goroutine, a new one, or the first to be free.
func (w *workers) push(t *task) {
	w.mu.Lock()
	switch {
	case w.waiting > 0:
		w.waiting--
		w.mu.Unlock()
		w.hand <- t // the goroutine claimed receives it, timed out or not
	case w.count < w.max:
		w.count++
		w.mu.Unlock()
		go w.loop(t)
	default:
		w.queue = append(w.queue, t)
		w.mu.Unlock()
	}
}

// running returns the goroutines running.
func (w *workers) running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count
}

func (w *workers) loop(t *task) {
	timer := time.NewTimer(w.idle)
	defer timer.Stop()
	for {
		w.run(t)
		w.mu.Lock()
		if w.head < len(w.queue) {
			t = w.queue[w.head]
			w.queue[w.head] = nil
			w.head++
			if w.head == len(w.queue) {
				w.queue, w.head = w.queue[:0], 0
			} else if w.head > 1024 && w.head > len(w.queue)/2 {
				w.queue, w.head = append(w.queue[:0], w.queue[w.head:]...), 0
			}
			w.mu.Unlock()
			continue
		}
		w.waiting++
		w.mu.Unlock()
		timer.Reset(w.idle)
		select {
		case t = <-w.hand:
			continue
		case <-timer.C:
		}
		w.mu.Lock()
		if w.waiting > 0 {
			// Nobody claimed this goroutine: it may go.
			w.waiting--
			w.count--
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		t = <-w.hand // a push claimed it as its timer fired
	}
}
