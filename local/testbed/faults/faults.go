// Package faults puts a fault-injecting proxy between a lock service and
// its backend: TCP for gRPC backends (etcd, Spanner), HTTP for the others
// (DynamoDB), or a fault-injecting http.RoundTripper inside the client
// where a proxy would be bypassed (Cosmos DB). It can delay traffic, reset
// connections, stall (black-hole for a while), and — the case lock clients
// get wrong — let a request reach the backend and then drop its response,
// so the caller cannot know the outcome. Faults are drawn at random with the
// probabilities of a Plan, which can be changed while traffic flows; every
// injected fault is counted.
package faults

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Plan says how often each fault strikes. Probabilities are per request
// (HTTP) or per chunk of traffic (TCP); zero disables a fault.
type Plan struct {
	// Delay is added to a fraction DelayP of requests or chunks.
	Delay  time.Duration
	DelayP float64
	// ResetP resets the connection before the request reaches the backend.
	ResetP float64
	// DropResponseP forwards the request, then drops the response (HTTP:
	// answers 502 or closes the connection; TCP: closes the connection
	// before the first response bytes are passed on).
	DropResponseP float64
	// Stall black-holes a fraction StallP of requests or chunks for Stall.
	Stall  time.Duration
	StallP float64
}

// Counts is how many faults of each kind were injected.
type Counts struct {
	Delays, Resets, DroppedResponses, Stalls int64
}

// Total is the number of faults injected.
func (c Counts) Total() int64 { return c.Delays + c.Resets + c.DroppedResponses + c.Stalls }

// injector draws faults from the current plan and counts them.
type injector struct {
	mu   sync.RWMutex
	plan Plan

	delays, resets, drops, stalls atomic.Int64
}

// SetPlan changes the faults from now on.
func (in *injector) SetPlan(p Plan) {
	in.mu.Lock()
	in.plan = p
	in.mu.Unlock()
}

func (in *injector) current() Plan {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.plan
}

// Counts returns the faults injected so far.
func (in *injector) Counts() Counts {
	return Counts{in.delays.Load(), in.resets.Load(), in.drops.Load(), in.stalls.Load()}
}

func hit(p float64) bool { return p > 0 && rand.Float64() < p }

// before applies the faults that strike before forwarding; it reports
// whether to reset instead of forwarding.
func (in *injector) before(p Plan) (reset bool) {
	if hit(p.ResetP) {
		in.resets.Add(1)
		return true
	}
	if hit(p.StallP) {
		in.stalls.Add(1)
		time.Sleep(p.Stall)
	}
	if hit(p.DelayP) {
		in.delays.Add(1)
		time.Sleep(p.Delay)
	}
	return false
}

// dropResponse reports whether to drop this response, counting it.
func (in *injector) dropResponse(p Plan) bool {
	if hit(p.DropResponseP) {
		in.drops.Add(1)
		return true
	}
	return false
}
