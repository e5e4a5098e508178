package cosmos_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/faults"
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
	b := newBackend(t, "soak")
	var (
		instances []providertest.Instance
		injectors []*faults.Transport
	)
	for _, skew := range []time.Duration{250 * time.Millisecond, -250 * time.Millisecond} {
		ft := faults.NewTransport(b.rt)
		cfg := b.config(ft)
		cfg.ClientOptions.Retry = policy.RetryOptions{MaxRetries: -1}
		c := &providertest.OffsetClock{}
		c.Set(skew)
		p, err := cosmos.New(cfg, cosmos.WithClock(c))
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		require.NoError(t, p.Ping(context.Background()))
		instances, injectors = append(instances, providertest.Instance{Provider: p, Skew: skew}), append(injectors, ft)
	}
	for _, ft := range injectors {
		ft.SetPlan(faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.002, DropResponseP: 0.005, Stall: 300 * time.Millisecond, StallP: 0.002})
	}
	res := providertest.Soak(context.Background(), instances, providertest.SoakConfig{
		Acquires: providertest.SoakAcquires(), Progress: providertest.ProgressLogger(t), TTL: 2 * time.Second,
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
