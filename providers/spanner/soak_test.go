package spanner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/local/testbed/spanneremu"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/spanner"
)

// TestSoak: two service instances, each with its own Spanner client behind
// a fault-injecting TCP proxy (delays, resets, stalls, responses dropped
// after the request went through) to one emulator. The instances' clocks
// play no part (expiry is Spanner's), so they run unskewed. Size:
// HASP_SOAK (make soak), at most 10,000; make test runs 600 acquires, not
// 2000, because the emulator serializes read-write transactions (about 20
// acquires a second under these faults).
func TestSoak(t *testing.T) {
	soak(t, 2, faultPlan, 600, 1)
}

// faultPlan is TestSoak's faults.
var faultPlan = faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.001, DropResponseP: 0.002, Stall: 300 * time.Millisecond, StallP: 0.001}

// TestSoakSemaphore is TestSoak with semaphores of 3 permits, checked by
// CheckPermits (make test runs 300 acquires: each is a read and a
// read-write transaction, which the emulator serializes).
func TestSoakSemaphore(t *testing.T) {
	soak(t, 2, faultPlan, 300, 3)
}

// TestSoakPolling: six service instances that only poll (as Cloud Function
// instances do), each with the client library's own retries, behind ten
// times the faults, so that transactions run again after a commit whose
// answer was lost meet the other instances' writes. A release of a live
// lease answering lease_lost is a violation of the soak. make test runs
// 300 acquires.
func TestSoakPolling(t *testing.T) {
	soak(t, 6, faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.01, DropResponseP: 0.02, Stall: 300 * time.Millisecond, StallP: 0.01}, 300, 1)
}

// soak runs the soak through n instances behind one fault proxy; short is
// its size in make test (HASP_SOAK sets it, up to 10,000); permits > 1
// makes every name a semaphore.
func soak(t *testing.T, n int, plan faults.Plan, short, permits int) {
	e := launch.Spanner(t)
	db := database(t, e)
	proxy, err := faults.NewTCPProxy(e.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	var instances []providertest.Instance
	for range n {
		p, err := spanner.New(context.Background(), db, spanner.WithClientOptions(spanneremu.ClientOptions(proxy.Addr())...))
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		instances = append(instances, providertest.Instance{Provider: p})
	}
	proxy.SetPlan(plan)
	acquires := min(providertest.SoakAcquiresOr(short), 10000)
	res := providertest.Soak(context.Background(), instances, providertest.SoakConfig{
		Acquires: acquires, Progress: providertest.ProgressLogger(t), TTL: 2 * time.Second, Permits: permits,
	})
	proxy.SetPlan(faults.Plan{})
	f := proxy.Counts()
	t.Logf("spanner %s soak: %s; faults injected: %d delays, %d resets, %d dropped responses, %d stalls",
		t.Name(), res.String(), f.Delays, f.Resets, f.DroppedResponses, f.Stalls)
	assert.Empty(t, res.Violations, res.Report())
	assert.Positive(t, f.Total(), "faults were injected")
}
