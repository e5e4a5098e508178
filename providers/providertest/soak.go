package providertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/service"
)

// Instance is one service instance of a soak: a provider on the shared
// backend whose clock reads Skew ahead of real time (open it with a clock
// that does, e.g. an OffsetClock set to Skew).
type Instance struct {
	Provider providers.Provider
	Skew     time.Duration
}

// SoakConfig sizes a soak run.
type SoakConfig struct {
	// Acquires is the number of successful acquires to reach (default 2000).
	Acquires int
	// Workers is the number of concurrent clients (default 8, or three per
	// name), spread over the instances; Names the number of lock names
	// (default 3, up to 8 for long soaks).
	Workers, Names int
	// TTL of every lease (default 2 s).
	TTL time.Duration
	// PauseP is the chance that a holder pauses for longer than its TTL
	// (then tries one write with its stale token, as a paused process
	// would); SkipReleaseP the chance it never releases (default 0.002 and
	// 0.005: each blocks its name for a whole TTL).
	PauseP, SkipReleaseP float64
	// OpTimeout bounds each backend call (default 2 s): a stalled backend
	// answers unavailable.
	OpTimeout time.Duration
	// Disturb, if set, runs beside the workload until ctx ends: restarts,
	// fault plans.
	Disturb func(ctx context.Context)
	// MaxDuration stops the run even if Acquires is not reached (default 10
	// minutes, or an hour and a half for runs of over 10,000 acquires);
	// reaching fewer than a quarter of Acquires is a failure.
	MaxDuration time.Duration
	// Progress, if set, is called every 30 seconds with the counts so far.
	Progress func(acquires, violations int)
	// Permits makes every name a semaphore of that many permits (default
	// 1, a mutex). The history is then checked with CheckPermits (never
	// more than Permits holders at once, no token twice, tokens in grant
	// order) instead of CheckHolds, and the fenced resource (which admits
	// one writer at a time) is not used.
	Permits int
}

// SoakResult counts what happened and lists every violation found.
type SoakResult struct {
	Acquires, Held, Unavailable, Renews, RenewsLost, Releases, ReleasesLost int64
	LocalExpiries, Pauses, StaleWrites, FencedWrites, StaleOps              int64
	Elapsed                                                                 time.Duration
	Violations                                                              []string
}

// String is a one-line summary.
func (r SoakResult) String() string {
	return fmt.Sprintf("%d acquires in %s (%d held, %d unavailable), %d renews (%d lost), %d releases (%d lost), %d local expiries, %d pauses > TTL, %d stale writes (%d fenced), %d stale renews/releases, %d violations",
		r.Acquires, r.Elapsed.Round(time.Millisecond), r.Held, r.Unavailable, r.Renews, r.RenewsLost, r.Releases, r.ReleasesLost,
		r.LocalExpiries, r.Pauses, r.StaleWrites, r.FencedWrites, r.StaleOps, len(r.Violations))
}

// resource is what the lock protects: it accepts a write only with a
// fencing token at least as large as every token it accepted before.
type resource struct {
	mu  sync.Mutex
	max map[string]int64
}

func (r *resource) write(name string, token int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if token < r.max[name] {
		return false
	}
	r.max[name] = token
	return true
}

// releases remembers when each lease's release was reported successful.
type releases struct {
	mu sync.Mutex
	at map[string]map[int64]time.Time
}

func (r *releases) add(name string, token int64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at[name] == nil {
		r.at[name] = map[int64]time.Time{}
	}
	r.at[name][token] = at
}

func (r *releases) before(name string, token int64, t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.at[name][token]
	return ok && at.Before(t)
}

// Soak runs a contended workload through the instances and checks the
// history: no two clients believed they held a name at once (each client
// counts its lease from when it sent the acquire or renew, minus a safety
// margin that covers the instances' clock differences), fencing tokens
// strictly increase in grant order, no successful acquire or renew is lost
// (renew and release never answer lease_lost before the lease could have
// expired), a lease reported released never shows up as a holder
// afterwards, and the protected resource never accepted a stale token.
// Providers should be opened without client-side retries of writes, so
// that a response dropped by a fault is reported unavailable rather than
// retried into a false lease_lost. It returns the counts and the violations (none is the only
// passing result).
func Soak(ctx context.Context, instances []Instance, cfg SoakConfig) SoakResult {
	if cfg.Acquires == 0 {
		cfg.Acquires = 2000
	}
	if cfg.Names == 0 {
		// Long soaks spread over more names to keep throughput up; every
		// name stays contended (three workers each).
		cfg.Names = min(max(3, cfg.Acquires/12500), 8)
	}
	cfg.Permits = max(cfg.Permits, 1)
	if cfg.Workers == 0 {
		cfg.Workers = max(8, (cfg.Permits+2)*cfg.Names)
	}
	fenced := cfg.Permits == 1
	if cfg.TTL == 0 {
		cfg.TTL = 2 * time.Second
	}
	if cfg.PauseP == 0 {
		cfg.PauseP = 0.002
	}
	if cfg.SkipReleaseP == 0 {
		cfg.SkipReleaseP = 0.005
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = 2 * time.Second
	}
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = 10 * time.Minute
		if cfg.Acquires > 10000 {
			cfg.MaxDuration = 90 * time.Minute
		}
	}
	maxSkew, minSkew := instances[0].Skew, instances[0].Skew
	for _, in := range instances {
		maxSkew, minSkew = max(maxSkew, in.Skew), min(minSkew, in.Skew)
	}
	// The client's margin: the SDK's default, plus the instances' largest
	// clock difference (see the client package).
	margin := min(max(cfg.TTL/10, 250*time.Millisecond), 5*time.Second) + (maxSkew - minSkew)

	svcs := make([]*service.Service, len(instances))
	for i, in := range instances {
		svcs[i] = service.New(in.Provider, service.WithOpTimeout(cfg.OpTimeout))
	}
	var b [4]byte
	for i := range b {
		b[i] = byte('a' + rand.IntN(26))
	}
	names := make([]string, cfg.Names)
	for i := range names {
		names[i] = fmt.Sprintf("soak.%s.%d", b, i)
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancel()
	var (
		res     SoakResult
		hist    History
		res0    = &resource{max: map[string]int64{}}
		rel     = &releases{at: map[string]map[int64]time.Time{}}
		vmu     sync.Mutex
		wg      sync.WaitGroup
		granted atomic.Int64
	)
	violation := func(format string, args ...any) {
		vmu.Lock()
		res.Violations = append(res.Violations, fmt.Sprintf(format, args...))
		vmu.Unlock()
	}
	start := time.Now()
	dctx, stopDisturb := context.WithCancel(ctx)
	var dwg sync.WaitGroup
	if cfg.Disturb != nil {
		dwg.Add(1)
		go func() { defer dwg.Done(); cfg.Disturb(dctx) }()
	}
	if cfg.Progress != nil {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			t := time.NewTicker(30 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-dctx.Done():
					return
				case <-t.C:
					vmu.Lock()
					v := len(res.Violations)
					vmu.Unlock()
					cfg.Progress(int(atomic.LoadInt64(&res.Acquires)), v)
				}
			}
		}()
	}
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := svcs[w%len(svcs)]
			for ctx.Err() == nil && granted.Load() < int64(cfg.Acquires) {
				name := names[rand.IntN(len(names))]
				sent := time.Now()
				l, err := svc.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: cfg.TTL, Wait: time.Second, Owner: fmt.Sprint("w", w), Permits: cfg.Permits})
				var held *lock.HeldError
				switch {
				case errors.As(err, &held):
					atomic.AddInt64(&res.Held, 1)
					if rel.before(name, held.Holder.FencingToken, sent) {
						violation("%s: lease with token %d was reported released, then reported holding", name, held.Holder.FencingToken)
					}
					continue
				case errors.Is(err, lock.ErrUnavailable), errors.Is(err, lock.ErrThrottled):
					atomic.AddInt64(&res.Unavailable, 1)
					continue
				case ctx.Err() != nil:
					return
				case err != nil:
					violation("worker %d: acquire %s: unexpected error: %v", w, name, err)
					continue
				}
				granted.Add(1)
				atomic.AddInt64(&res.Acquires, 1)
				begin := time.Now()
				deadline := sent.Add(l.TTL - margin)
				last := begin
				writes := 1 + rand.IntN(3)
				if !time.Now().Before(deadline) {
					// Granted too late to rely on: do no work, but release.
					atomic.AddInt64(&res.LocalExpiries, 1)
					writes = 0
				} else if fenced && !res0.write(name, l.FencingToken) {
					violation("%s: token %d refused by the resource while its lease was live", name, l.FencingToken)
				}
				for k := range writes {
					time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
					if k%2 == 1 {
						rsent := time.Now()
						r, err := svc.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
						atomic.AddInt64(&res.Renews, 1)
						switch {
						case err == nil:
							if r.FencingToken != l.FencingToken {
								violation("%s: renew changed the token %d to %d", name, l.FencingToken, r.FencingToken)
							}
							deadline = rsent.Add(r.TTL - margin)
						case errors.Is(err, lock.ErrLeaseLost):
							atomic.AddInt64(&res.RenewsLost, 1)
							if time.Now().Before(deadline) {
								violation("%s: renew of token %d answered lease_lost %s before the lease could have expired",
									name, l.FencingToken, time.Until(deadline).Round(time.Millisecond))
							}
						case !errors.Is(err, lock.ErrUnavailable) && !errors.Is(err, lock.ErrThrottled) && ctx.Err() == nil:
							violation("%s: renew of token %d: unexpected error: %v", name, l.FencingToken, err)
						}
						if err != nil && errors.Is(err, lock.ErrLeaseLost) {
							break
						}
					}
					now := time.Now()
					if !now.Before(deadline) {
						atomic.AddInt64(&res.LocalExpiries, 1)
						break
					}
					if fenced && !res0.write(name, l.FencingToken) {
						violation("%s: token %d refused by the resource while its lease was live", name, l.FencingToken)
					}
					last = now
				}
				if writes > 0 {
					// Only a lease the client relied on is a hold: one granted
					// too late (past its deadline) was never used.
					hist.Add(Hold{Name: name, Token: l.FencingToken, Start: begin, End: last, Client: w, Sent: sent})
				}
				if rand.Float64() < cfg.PauseP {
					// A process pause longer than the TTL: then one write with the
					// stale token, which fencing must refuse if anyone came after.
					atomic.AddInt64(&res.Pauses, 1)
					time.Sleep(l.TTL + 100*time.Millisecond)
					if fenced {
						atomic.AddInt64(&res.StaleWrites, 1)
						if !res0.write(name, l.FencingToken) {
							atomic.AddInt64(&res.FencedWrites, 1)
						}
					}
				}
				if rand.Float64() < cfg.SkipReleaseP {
					continue // let it expire
				}
				err = svc.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID})
				atomic.AddInt64(&res.Releases, 1)
				switch {
				case err == nil:
					rel.add(name, l.FencingToken, time.Now())
					if rand.Float64() < 0.05 {
						// A stale client: the released lease must not renew or
						// release again, nor disturb whoever holds the name now
						// (a waiter has usually taken it a moment later).
						time.Sleep(time.Millisecond)
						atomic.AddInt64(&res.StaleOps, 2)
						if _, err := svc.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID}); !staleOK(err) {
							violation("%s: renew of the released lease with token %d: %v, want lease_lost", name, l.FencingToken, err)
						}
						if err := svc.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}); !staleOK(err) {
							violation("%s: second release of the lease with token %d: %v, want lease_lost", name, l.FencingToken, err)
						}
					}
				case errors.Is(err, lock.ErrLeaseLost):
					atomic.AddInt64(&res.ReleasesLost, 1)
					if time.Now().Before(deadline) {
						violation("%s: release of token %d answered lease_lost %s before the lease could have expired",
							name, l.FencingToken, time.Until(deadline).Round(time.Millisecond))
					}
				case !errors.Is(err, lock.ErrUnavailable) && !errors.Is(err, lock.ErrThrottled) && ctx.Err() == nil:
					violation("%s: release of token %d: unexpected error: %v", name, l.FencingToken, err)
				}
			}
		}()
	}
	wg.Wait()
	stopDisturb()
	dwg.Wait()
	res.Elapsed = time.Since(start)
	check := hist.Check
	if !fenced {
		check = func() error {
			hist.mu.Lock()
			defer hist.mu.Unlock()
			return CheckPermits(hist.holds, cfg.Permits)
		}
	}
	if err := check(); err != nil {
		violation("%v", err)
	}
	if res.Acquires < int64(cfg.Acquires)/4 {
		violation("only %d of %d acquires in %s: the workload stalled", res.Acquires, cfg.Acquires, cfg.MaxDuration)
	}
	sort.Strings(res.Violations)
	return res
}

// staleOK reports whether err is a right answer to a renew or release of
// a lease already released: lease_lost, or an unknown outcome.
func staleOK(err error) bool {
	return errors.Is(err, lock.ErrLeaseLost) || errors.Is(err, lock.ErrUnavailable) || errors.Is(err, lock.ErrThrottled)
}

// Report formats a result with its violations for a test log.
func (r SoakResult) Report() string {
	if len(r.Violations) == 0 {
		return r.String()
	}
	return r.String() + ":\n  " + strings.Join(r.Violations, "\n  ")
}
