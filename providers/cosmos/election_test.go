package cosmos_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/providers/cosmos"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/service"
)

// TestElectionThroughFaults runs the election (5 candidates, one paused
// past its TTL, watching observers, which poll on Cosmos DB) on three
// service instances (as three function instances), each with faults in
// its HTTP transport (a proxy would be bypassed: the SDK sends to the
// endpoint the account advertises): delays, resets, responses dropped
// after the emulator applied the request, stalls. The SDK's retries are
// off, so a dropped response is an unknown outcome.
func TestElectionThroughFaults(t *testing.T) {
	b := newBackend(t, "election")
	var (
		instances []*service.Service
		injectors []providertest.Injector
	)
	for range 3 {
		ft := faults.NewTransport(b.rt)
		cfg := b.config(ft)
		cfg.ClientOptions.Retry = policy.RetryOptions{MaxRetries: -1}
		p, err := cosmos.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		require.NoError(t, p.Ping(context.Background()))
		instances, injectors = append(instances, service.New(p, service.WithOpTimeout(2*time.Second))), append(injectors, ft)
	}
	providertest.ElectionThroughFaults(t, instances, faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.05, ResetP: 0.005, DropResponseP: 0.01, Stall: 200 * time.Millisecond, StallP: 0.005}, injectors...)
}
