package cosmos_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/providers/cosmos"
	"github.com/hasplock/hasp/providers/providertest"
)

// TestSoak runs the soak on the emulator through two service instances
// with clocks ±250 ms apart, with faults injected into each instance's
// HTTP transport (delays, resets, stalls, and responses dropped after the
// emulator applied the request): a proxy would be bypassed, since the SDK
// sends its requests to the endpoint the account advertises. The SDK's
// own retries are off, so a dropped response is an unknown outcome (503)
// rather than a retried write.
func TestSoak(t *testing.T) {
	soak(t, 2, false, faultPlan, 2000, 1)
}

// faultPlan is TestSoak's faults.
var faultPlan = faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.002, DropResponseP: 0.005, Stall: 300 * time.Millisecond, StallP: 0.002}

// TestSoakSemaphore is TestSoak with semaphores of 3 permits (600
// acquires in make test).
func TestSoakSemaphore(t *testing.T) {
	soak(t, 2, false, faultPlan, 600, 3)
}

// TestSoakPolling: eight service instances that only poll (as function
// instances do), with the SDK's default retry policy on, so that a write
// retried after it was applied meets the other instances' writes: 5 % of
// responses dropped after the emulator applied the request, 5 % of
// requests reset before it, 2 % stalled. A release of a live lease
// answering lease_lost is a violation of the soak. The SDK's retry delays
// make it slow: make test runs 400 acquires.
func TestSoakPolling(t *testing.T) {
	soak(t, 8, true, faults.Plan{ResetP: 0.05, DropResponseP: 0.05, Stall: 300 * time.Millisecond, StallP: 0.02}, 400, 1)
}

// soak runs the soak through n instances with clocks spread over ±250 ms,
// each with plan's faults in its transport and, with retries, the SDK's
// default retry policy; short is its size in make test; permits > 1 makes
// every name a semaphore.
func soak(t *testing.T, n int, retries bool, plan faults.Plan, short, permits int) {
	b := newBackend(t, fmt.Sprintf("soak%d%d", n, permits))
	var (
		instances []providertest.Instance
		injectors []*faults.Transport
	)
	for i := range n {
		skew := 250*time.Millisecond - time.Duration(i)*500*time.Millisecond/time.Duration(n-1)
		ft := faults.NewTransport(b.rt)
		cfg := b.config(ft)
		if !retries {
			cfg.ClientOptions.Retry = policy.RetryOptions{MaxRetries: -1}
		}
		c := &providertest.OffsetClock{}
		c.Set(skew)
		p, err := cosmos.New(cfg, cosmos.WithClock(c))
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		require.NoError(t, p.Ping(context.Background()))
		instances, injectors = append(instances, providertest.Instance{Provider: p, Skew: skew}), append(injectors, ft)
	}
	for _, ft := range injectors {
		ft.SetPlan(plan)
	}
	res := providertest.Soak(context.Background(), instances, providertest.SoakConfig{
		Acquires: providertest.SoakAcquiresOr(short), Progress: providertest.ProgressLogger(t), TTL: 2 * time.Second, Permits: permits,
	})
	var f faults.Counts
	for _, ft := range injectors {
		ft.SetPlan(faults.Plan{})
		c := ft.Counts()
		f.Delays, f.Resets, f.DroppedResponses, f.Stalls = f.Delays+c.Delays, f.Resets+c.Resets, f.DroppedResponses+c.DroppedResponses, f.Stalls+c.Stalls
	}
	t.Logf("%s soak: %s; faults injected: %d delays, %d resets, %d dropped responses, %d stalls", t.Name(), res.String(), f.Delays, f.Resets, f.DroppedResponses, f.Stalls)
	assert.Empty(t, res.Violations, res.Report())
	assert.Positive(t, f.Total(), "faults were injected")
}
