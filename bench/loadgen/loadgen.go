// Package loadgen is the engine of `hasp bench`: concurrent workers that
// acquire, hold and release locks against a Target (an HTTP endpoint
// through the client SDK, or a store directly through the lock service),
// measuring throughput, latencies, handoffs and backend requests.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasplock/hasp/lock"
)

// Target is what the workers lock against.
type Target interface {
	// Acquire takes name, waiting up to wait.
	Acquire(ctx context.Context, name string, ttl, wait time.Duration) (leaseID string, err error)
	// Release releases a lease.
	Release(ctx context.Context, name, leaseID string) error
	// BackendRequests returns the backend requests made so far, or -1 when
	// they cannot be counted.
	BackendRequests() int64
}

// Config is a load: Workers goroutines over Names lock names for Duration,
// each holding a granted lock for Hold, with leases of TTL, waiting up to
// Wait for a held lock.
type Config struct {
	Workers  int           `json:"workers"`
	Names    int           `json:"names"`
	Hold     time.Duration `json:"-"`
	Duration time.Duration `json:"-"`
	TTL      time.Duration `json:"-"`
	Wait     time.Duration `json:"-"`
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(p float64) float64 { return float64(d[int(float64(len(d)-1)*p)].Microseconds()) / 1000 }
	return Percentiles{Count: len(d), P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: at(1)}
}

// Result is what a run measured.
type Result struct {
	Config          Config      `json:"config"`
	HoldMs          float64     `json:"hold_ms"`
	ElapsedS        float64     `json:"elapsed_s"`
	Cycles          int64       `json:"cycles"`
	CyclesPerSecond float64     `json:"cycles_per_second"`
	Held            int64       `json:"held"`
	Errors          int64       `json:"errors"`
	FirstError      string      `json:"first_error,omitempty"`
	Acquire         Percentiles `json:"acquire"`
	Release         Percentiles `json:"release"`
	Handoff         Percentiles `json:"handoff"`
	// BackendRequestsPerCycle is backend requests per acquire+release
	// (including failed and waiting attempts), or -1 when not countable.
	BackendRequestsPerCycle float64 `json:"backend_requests_per_cycle"`
}

// Progress is a snapshot reported while a run goes on.
type Progress struct {
	Elapsed time.Duration
	Cycles  int64
}

// Run runs the load and returns what it measured. progress, if not nil, is
// called about once a second.
func Run(ctx context.Context, tg Target, cfg Config, progress func(Progress)) Result {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Names <= 0 {
		cfg.Names = 1
	}
	if cfg.TTL == 0 {
		cfg.TTL = lock.DefaultTTL
	}
	names := make([]string, cfg.Names)
	tag := rand.Uint32()
	for i := range names {
		names[i] = fmt.Sprintf("bench.%08x.%d", tag, i)
	}
	type lastRelease struct {
		at     time.Time
		worker int
	}
	var (
		mu                 sync.Mutex
		acq, rel, hand     []time.Duration
		last               = map[string]lastRelease{}
		cycles, held, errs atomic.Int64
		firstErr           atomic.Value
		wg                 sync.WaitGroup
	)
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	rctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	before := tg.BackendRequests()
	start := time.Now()
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rctx.Err() == nil {
				name := names[rand.IntN(len(names))]
				t0 := time.Now()
				id, err := tg.Acquire(rctx, name, cfg.TTL, cfg.Wait)
				t1 := time.Now()
				switch {
				case errors.Is(err, lock.ErrHeld):
					held.Add(1)
					continue
				case rctx.Err() != nil:
					return
				case err != nil:
					fail(err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mu.Lock()
				acq = append(acq, t1.Sub(t0))
				if lr, ok := last[name]; ok && lr.worker != w && lr.at.After(t0) {
					// This worker was waiting when the lock was released.
					hand = append(hand, t1.Sub(lr.at))
				}
				mu.Unlock()
				time.Sleep(cfg.Hold)
				t2 := time.Now()
				mu.Lock()
				last[name] = lastRelease{at: t2, worker: w}
				mu.Unlock()
				// Release even if the run just ended: leave nothing held.
				err = tg.Release(context.WithoutCancel(rctx), name, id)
				t3 := time.Now()
				if err != nil {
					fail(err)
					continue
				}
				cycles.Add(1)
				mu.Lock()
				rel = append(rel, t3.Sub(t2))
				mu.Unlock()
			}
		}()
	}
	if progress != nil {
		go func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case <-tick.C:
					progress(Progress{Elapsed: time.Since(start), Cycles: cycles.Load()})
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := Result{
		Config: cfg, HoldMs: float64(cfg.Hold.Microseconds()) / 1000, ElapsedS: elapsed.Seconds(),
		Cycles: cycles.Load(), Held: held.Load(), Errors: errs.Load(),
		Acquire: percentiles(acq), Release: percentiles(rel), Handoff: percentiles(hand),
		BackendRequestsPerCycle: -1,
	}
	res.CyclesPerSecond = float64(res.Cycles) / elapsed.Seconds()
	if s, ok := firstErr.Load().(string); ok {
		res.FirstError = s
	}
	if after := tg.BackendRequests(); before >= 0 && after >= 0 && res.Cycles > 0 {
		res.BackendRequestsPerCycle = float64(after-before) / float64(res.Cycles)
	}
	return res
}
