package telemetry

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/service"
)

// Recorder turns the service's operations, backend calls and HTTP
// requests into the metrics of this package, on a Sink. It implements
// service.Observer (pass it with service.WithObserver), wraps providers
// (Provider) and observes HTTP requests (HTTP, for api.WithRequestObserver).
type Recorder struct {
	sink Sink

	mu     sync.Mutex
	active map[string]time.Time // this instance's leases (by lease id, never exported) → expiry
	now    func() time.Time
}

// gaugeFuncer is a Sink that reads gauges when it is scraped.
type gaugeFuncer interface {
	GaugeFunc(m Metric, f func() float64)
}

// NewRecorder returns a Recorder writing to sink.
func NewRecorder(sink Sink) *Recorder {
	r := &Recorder{sink: sink, active: map[string]time.Time{}, now: time.Now}
	if g, ok := sink.(gaugeFuncer); ok {
		g.GaugeFunc(ActiveCount, func() float64 { return float64(r.Active()) })
	}
	return r
}

var _ service.Observer = (*Recorder)(nil)

// Active returns the number of leases granted or renewed by this instance
// that have not been released, lost or expired.
func (r *Recorder) Active() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for id, exp := range r.active {
		if !exp.After(now) {
			delete(r.active, id)
		}
	}
	return len(r.active)
}

func (r *Recorder) track(id string, exp time.Time, live bool) {
	r.mu.Lock()
	if live {
		r.active[id] = exp
	} else {
		delete(r.active, id)
	}
	r.mu.Unlock()
	r.sink.Set(ActiveCount, float64(r.Active()))
}

// ObserveAcquire implements service.Observer.
func (r *Recorder) ObserveAcquire(_ context.Context, _ lock.AcquireRequest, l lock.Lease, err error, took time.Duration, contended bool) {
	res := service.Result("acquire", err)
	r.sink.Add(AcquireTotal, 1, res)
	r.sink.Observe(AcquireDuration, took.Seconds(), res)
	if contended {
		r.sink.Add(ContendedAcquireTotal, 1)
	}
	if err == nil {
		r.track(l.LeaseID, l.ExpiresAt, true)
	}
}

// ObserveRenew implements service.Observer.
func (r *Recorder) ObserveRenew(_ context.Context, req lock.RenewRequest, l lock.Lease, err error, _ time.Duration) {
	r.sink.Add(RenewTotal, 1, service.Result("renew", err))
	switch {
	case err == nil:
		r.track(req.LeaseID, l.ExpiresAt, true)
	case errors.Is(err, lock.ErrLeaseLost):
		r.sink.Add(LostTotal, 1)
		r.track(req.LeaseID, time.Time{}, false)
	}
}

// ObserveRelease implements service.Observer. The hold time comes from
// the lease id (service.LeaseIssuedAt), so a release served by another
// instance than the acquire is measured too.
func (r *Recorder) ObserveRelease(_ context.Context, req lock.ReleaseRequest, err error, _ time.Duration) {
	r.sink.Add(ReleaseTotal, 1, service.Result("release", err))
	switch {
	case err == nil:
		if at, ok := service.LeaseIssuedAt(req.LeaseID); ok {
			if held := r.now().Sub(at); held >= 0 {
				r.sink.Observe(HoldDuration, held.Seconds())
			}
		}
		r.track(req.LeaseID, time.Time{}, false)
	case errors.Is(err, lock.ErrLeaseLost):
		r.sink.Add(LostTotal, 1)
		r.track(req.LeaseID, time.Time{}, false)
	}
}

// HTTP observes one answered HTTP request: its route ("acquire",
// "renew", "release", "status", "health", or "other"), status code and
// duration. Pass it to api.WithRequestObserver.
func (r *Recorder) HTTP(route string, code int, took time.Duration) {
	r.sink.Add(HTTPRequestsTotal, 1, route, itoa(code))
	r.sink.Observe(HTTPRequestDuration, took.Seconds(), route)
}

func itoa(code int) string {
	if code < 100 || code > 999 {
		return "other"
	}
	return string([]byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)})
}
