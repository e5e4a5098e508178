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

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/dynamodb"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/service"
)

// TestElectionThroughFaults runs the election (5 candidates, one paused
// past its TTL, watching observers, which poll on DynamoDB) on three
// service instances (as three Lambda containers) behind a fault-injecting
// HTTP proxy in front of dynalite: delays, resets, responses dropped
// after the write was applied, stalls. The SDK's retries are off, so a
// dropped response is an unknown outcome.
func TestElectionThroughFaults(t *testing.T) {
	url, _ := launch.Dynalite(t, "")
	const table = "election"
	require.NoError(t, dynamodb.CreateTable(context.Background(), client(url, nil), table, false))
	proxy, err := faults.NewHTTPProxy(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	var instances []*service.Service
	for range 3 {
		p, err := dynamodb.New(awsdb.New(awsdb.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(proxy.URL()),
			Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
			Retryer:     aws.NopRetryer{},
		}), table)
		require.NoError(t, err)
		instances = append(instances, service.New(p, service.WithOpTimeout(2*time.Second)))
	}
	proxy.SetPlan(faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.05, ResetP: 0.005, DropResponseP: 0.01, Stall: 200 * time.Millisecond, StallP: 0.005})
	providertest.Election(t, instances, "election.faults", providertest.ElectionConfig{Duration: 5 * time.Second})
	proxy.SetPlan(faults.Plan{})
	f := proxy.Counts()
	t.Logf("faults injected: %d delays, %d resets, %d dropped responses, %d stalls", f.Delays, f.Resets, f.DroppedResponses, f.Stalls)
	assert.Positive(t, f.Total(), "faults were injected")
}
