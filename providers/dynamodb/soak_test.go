package dynamodb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/dynamodb"
	"github.com/hasplock/hasp/providers/providertest"
)

// soakSetup is the shape of one soak: how many service instances share
// the table, whether the SDK retries (as in production), and the faults.
type soakSetup struct {
	instances int
	retries   bool
	plan      faults.Plan
	short     int // the size make test runs
	permits   int // > 1: every name is a semaphore
}

// defaultSoak: two service instances with clocks ±250 ms apart and the
// SDK's own retries off, so that a dropped response is an unknown outcome
// (503) rather than a retried write.
var defaultSoak = soakSetup{instances: 2, short: 2000, plan: faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.002, DropResponseP: 0.005, Stall: 300 * time.Millisecond, StallP: 0.002}}

// pollingSoak is many service instances that only poll (as Lambda
// execution environments do), with the SDK's default retryer on, so that
// writes applied but unanswered are retried while other instances take the
// freed lock: 5 % of responses dropped after DynamoDB applied the request,
// 5 % of requests reset before it, 2 % stalled. A release of a live lease
// answering lease_lost is a violation of the soak. make test runs 1,000
// acquires of it.
var pollingSoak = soakSetup{instances: 8, retries: true, short: 1000, plan: faults.Plan{ResetP: 0.05, DropResponseP: 0.05, Stall: 300 * time.Millisecond, StallP: 0.02}}

// soak runs the soak against a DynamoDB server behind a fault-injecting
// HTTP proxy, through setup's instances with clocks spread over ±250 ms.
func soak(t *testing.T, url string, setup soakSetup, disturb func(ctx context.Context)) {
	table := fmt.Sprintf("soak%d-%d", setup.instances, setup.permits)
	require.NoError(t, dynamodb.CreateTable(context.Background(), client(url, nil), table, false))
	proxy, err := faults.NewHTTPProxy(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	var instances []providertest.Instance
	for i := range setup.instances {
		skew := 250*time.Millisecond - time.Duration(i)*500*time.Millisecond/time.Duration(setup.instances-1)
		opts := awsdb.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(proxy.URL()),
			Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
			Retryer:     aws.NopRetryer{},
		}
		if setup.retries {
			opts.Retryer = retry.NewStandard()
		}
		c := &providertest.OffsetClock{}
		c.Set(skew)
		p, err := dynamodb.New(awsdb.New(opts), table, dynamodb.WithClock(c))
		require.NoError(t, err)
		instances = append(instances, providertest.Instance{Provider: p, Skew: skew})
	}
	proxy.SetPlan(setup.plan)
	res := providertest.Soak(context.Background(), instances, providertest.SoakConfig{
		Acquires: providertest.SoakAcquiresOr(setup.short), Progress: providertest.ProgressLogger(t), TTL: 2 * time.Second, Disturb: disturb,
		Permits: setup.permits,
	})
	proxy.SetPlan(faults.Plan{})
	f := proxy.Counts()
	t.Logf("%s soak: %s; faults injected: %d delays, %d resets, %d dropped responses, %d stalls", t.Name(), res.String(), f.Delays, f.Resets, f.DroppedResponses, f.Stalls)
	assert.Empty(t, res.Violations, res.Report())
	assert.Positive(t, f.Total(), "faults were injected")
}

// TestSoakSemaphoreMoto: the default soak with semaphores of 3 permits.
func TestSoakSemaphoreMoto(t *testing.T) {
	t.Parallel() // each soak has its own server
	setup := defaultSoak
	setup.permits, setup.short = 3, 600
	soak(t, launch.Moto(t), setup, nil)
}

// TestSoakSemaphorePollingDynalite: the polling soak (eight instances, the
// SDK retrying writes whose answers were dropped) with semaphores of 3.
func TestSoakSemaphorePollingDynalite(t *testing.T) {
	t.Parallel() // each soak has its own server
	url, _ := launch.Dynalite(t, "")
	setup := pollingSoak
	setup.permits, setup.short = 3, 600
	soak(t, url, setup, nil)
}

func TestSoakMoto(t *testing.T) {
	t.Parallel() // each soak has its own server
	soak(t, launch.Moto(t), defaultSoak, nil)
}

// TestSoakPollingMoto: eight polling instances, the SDK retrying.
func TestSoakPollingMoto(t *testing.T) {
	t.Parallel() // each soak has its own server
	soak(t, launch.Moto(t), pollingSoak, nil)
}

// TestSoakPollingDynalite: eight polling instances, the SDK retrying.
func TestSoakPollingDynalite(t *testing.T) {
	t.Parallel() // each soak has its own server
	url, _ := launch.Dynalite(t, "")
	soak(t, url, pollingSoak, nil)
}

// TestSoakDynalite also restarts dynalite from its data directory every
// few seconds.
func TestSoakDynalite(t *testing.T) {
	t.Parallel() // each soak has its own server
	url, proc := launch.Dynalite(t, t.TempDir())
	soak(t, url, defaultSoak, func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(4 * time.Second):
			}
			proc.Restart(t, launch.HTTPReady(url))
		}
	})
}
