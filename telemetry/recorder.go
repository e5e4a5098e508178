package telemetry

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/telemetry/catalog"
)

// Recorder turns the service's operations, backend calls and HTTP
// requests into the metrics of this package, on a Sink. It implements
// service.Observer (pass it with service.WithObserver), wraps providers
// (Provider) and observes HTTP requests (HTTP, for api.WithRequestObserver).
type Recorder struct {
	sink Sink

	watches atomic.Int64 // watches open now

	mu        sync.Mutex
	active    map[uint64]time.Time // this instance's live leases (by a hash of the id) → expiry
	nextPrune time.Time
	now       func() time.Time
}

// MaxHold is the longest hold time lock_hold_duration_seconds records.
const MaxHold = 30 * 24 * time.Hour

// MaxTracked bounds the leases a Recorder tracks for lock_active_count
// (about 50 MB at the bound); beyond it new leases are not counted.
const MaxTracked = 1 << 20

// gaugeFuncer is a Sink that reads gauges when it is scraped.
type gaugeFuncer interface {
	GaugeFunc(m catalog.Metric, f func() float64)
}

// NewRecorder returns a Recorder writing to sink.
func NewRecorder(sink Sink) *Recorder {
	r := &Recorder{sink: sink, active: map[uint64]time.Time{}, now: time.Now}
	if g, ok := sink.(gaugeFuncer); ok {
		g.GaugeFunc(catalog.ActiveCount, func() float64 { return float64(r.Active()) })
		g.GaugeFunc(catalog.WatchesOpen, func() float64 { return float64(r.watches.Load()) })
	}
	return r
}

// Active returns the number of leases granted or renewed by this instance
// that have not been released, lost or expired (expiries are noticed
// within a second).
func (r *Recorder) Active() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.activeLocked()
}

// activeLocked prunes expired leases, at most once a second, and counts.
func (r *Recorder) activeLocked() int {
	if now := r.now(); now.After(r.nextPrune) {
		for id, exp := range r.active {
			if !exp.After(now) {
				delete(r.active, id)
			}
		}
		r.nextPrune = now.Add(time.Second)
	}
	return len(r.active)
}

func (r *Recorder) track(id string, exp time.Time, live bool) {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	key := h.Sum64()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.active[key]; live && (known || len(r.active) < MaxTracked) {
		r.active[key] = exp
	} else if !live {
		delete(r.active, key)
	}
	// Under the lock, so that gauges never go back to an older count.
	r.sink.Set(catalog.ActiveCount, float64(r.activeLocked()))
}

// ObserveAcquire implements service.Observer.
func (r *Recorder) ObserveAcquire(_ context.Context, _ lock.AcquireRequest, l lock.Lease, err error, took time.Duration, contended bool) {
	res := Result("acquire", err)
	r.sink.Add(catalog.AcquireTotal, 1, res)
	r.sink.Observe(catalog.AcquireDuration, took.Seconds(), res)
	if contended {
		r.sink.Add(catalog.ContendedAcquireTotal, 1)
	}
	if err == nil {
		r.track(l.LeaseID, l.ExpiresAt, true)
	}
}

// ObserveRenew implements service.Observer.
func (r *Recorder) ObserveRenew(_ context.Context, req lock.RenewRequest, l lock.Lease, err error, _ time.Duration) {
	r.sink.Add(catalog.RenewTotal, 1, Result("renew", err))
	switch {
	case err == nil:
		r.track(req.LeaseID, l.ExpiresAt, true)
	case errors.Is(err, lock.ErrLeaseLost):
		r.sink.Add(catalog.LostTotal, 1)
		r.track(req.LeaseID, time.Time{}, false)
	}
}

// ObserveRelease implements service.Observer. The hold time comes from
// the lease id (providers.LeaseIssuedAt), so a release served by another
// instance than the acquire is measured too; it counts from the acquire
// request (server-side waiting included) and takes in the clock difference
// between the two instances. Ids that read as older than MaxHold (ids of
// another format) are not measured.
func (r *Recorder) ObserveRelease(_ context.Context, req lock.ReleaseRequest, err error, _ time.Duration) {
	r.sink.Add(catalog.ReleaseTotal, 1, Result("release", err))
	switch {
	case err == nil:
		if at, ok := providers.LeaseIssuedAt(req.LeaseID); ok {
			if held := r.now().Sub(at); held >= 0 && held <= MaxHold {
				r.sink.Observe(catalog.HoldDuration, held.Seconds())
			}
		}
		r.track(req.LeaseID, time.Time{}, false)
	case errors.Is(err, lock.ErrLeaseLost):
		r.sink.Add(catalog.LostTotal, 1)
		r.track(req.LeaseID, time.Time{}, false)
	}
}

// ObserveWatchStart implements service.WatchObserver: lock_watches_open
// goes up by one.
func (r *Recorder) ObserveWatchStart(context.Context) { r.watchDelta(1) }

// watchDelta moves the count of open watches; the lock keeps the gauge
// from going back to an older count.
func (r *Recorder) watchDelta(d int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sink.Set(catalog.WatchesOpen, float64(r.watches.Add(d)))
}

// ObserveWatchEnd implements service.WatchObserver: lock_watches_open goes
// down by one, and lock_watch_changes_total counts a watch answered with a
// change of holder.
func (r *Recorder) ObserveWatchEnd(_ context.Context, changed bool, err error) {
	r.watchDelta(-1)
	if changed && err == nil {
		r.sink.Add(catalog.WatchChangesTotal, 1)
	}
}

// HTTP observes one answered HTTP request: its route ("acquire",
// "renew", "release", "status", "health", or "other"), status code and
// duration. Pass it to api.WithRequestObserver.
func (r *Recorder) HTTP(route string, code int, took time.Duration) {
	r.sink.Add(catalog.HTTPRequestsTotal, 1, route, itoa(code))
	r.sink.Observe(catalog.HTTPRequestDuration, took.Seconds(), route)
}

func itoa(code int) string {
	if code < 100 || code > 999 {
		return "other"
	}
	return string([]byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)})
}
