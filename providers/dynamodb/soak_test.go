package dynamodb_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/faults"
	"github.com/hasplock/hasp/local/launch"
	"github.com/hasplock/hasp/providers/dynamodb"
	"github.com/hasplock/hasp/providers/providertest"
)

// soak runs the soak against a DynamoDB server behind a fault-injecting
// HTTP proxy, through two service instances with clocks ±250 ms apart.
// The SDK's own retries are off, so a dropped response is an unknown
// outcome (503) rather than a retried write.
func soak(t *testing.T, url string, disturb func(ctx context.Context)) {
	require.NoError(t, dynamodb.CreateTable(context.Background(), client(url, nil), "soak", false))
	proxy, err := faults.NewHTTPProxy(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	var instances []providertest.Instance
	for _, skew := range []time.Duration{250 * time.Millisecond, -250 * time.Millisecond} {
		db := awsdb.New(awsdb.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(proxy.URL()),
			Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
			Retryer:     aws.NopRetryer{},
		})
		c := &providertest.OffsetClock{}
		c.Set(skew)
		p, err := dynamodb.New(db, "soak", dynamodb.WithClock(c))
		require.NoError(t, err)
		instances = append(instances, providertest.Instance{Provider: p, Skew: skew})
	}
	proxy.SetPlan(faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.002, DropResponseP: 0.005, Stall: 300 * time.Millisecond, StallP: 0.002})
	res := providertest.Soak(context.Background(), instances, providertest.SoakConfig{
		Acquires: providertest.SoakAcquires(), Progress: providertest.ProgressLogger(t), TTL: 2 * time.Second, Disturb: disturb,
	})
	proxy.SetPlan(faults.Plan{})
	f := proxy.Counts()
	t.Logf("%s soak: %s; faults injected: %d delays, %d resets, %d dropped responses, %d stalls", t.Name(), res.String(), f.Delays, f.Resets, f.DroppedResponses, f.Stalls)
	assert.Empty(t, res.Violations, res.Report())
	assert.Positive(t, f.Total(), "faults were injected")
}

func TestSoakMoto(t *testing.T) {
	soak(t, launch.Moto(t), nil)
}

// TestSoakDynalite also restarts dynalite from its data directory every
// few seconds.
func TestSoakDynalite(t *testing.T) {
	url, proc := launch.Dynalite(t, t.TempDir())
	soak(t, url, func(ctx context.Context) {
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
