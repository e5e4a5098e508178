package dynamodb_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
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
	providertest.ElectionThroughFaults(t, instances, faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.05, ResetP: 0.005, DropResponseP: 0.01, Stall: 200 * time.Millisecond, StallP: 0.005}, proxy)
}

// TestListScanIsBounded: a page of a listing is one Scan that reads at
// most the scan budget of items, held or not; following the pages lists
// every held name under the prefix exactly once, and nothing else.
func TestListScanIsBounded(t *testing.T) {
	url := launch.Moto(t)
	cnt := &counter{ops: map[string]int{}}
	db := client(url, &http.Client{Transport: cnt})
	require.NoError(t, dynamodb.CreateTable(context.Background(), db, "listed", false))
	p, err := dynamodb.New(db, "listed", dynamodb.WithListScanBudget(10))
	require.NoError(t, err)
	s := service.New(p)
	ctx := context.Background()
	held := map[string]bool{}
	for i := range 30 {
		name := fmt.Sprintf("a/%02d", i)
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name})
		require.NoError(t, err)
		switch {
		case i%3 == 0: // released: the item stays, idle
			require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
		default:
			held[name] = true
		}
		_, err = s.Acquire(ctx, lock.AcquireRequest{Name: fmt.Sprintf("b/%02d", i)})
		require.NoError(t, err)
	}
	seen := map[string]bool{}
	page, pages := "", 0
	for {
		cnt.reset()
		items, next, err := s.List(ctx, "a/", 100, page)
		require.NoError(t, err)
		pages++
		assert.Equal(t, map[string]int{"DynamoDB_20120810.Scan": 1}, cnt.reset(), "page %d: one Scan of at most 10 items", pages)
		assert.LessOrEqual(t, len(items), 10)
		for _, st := range items {
			assert.True(t, held[st.Name], "%s is not held under the prefix", st.Name)
			assert.False(t, seen[st.Name], "%s listed twice", st.Name)
			seen[st.Name] = true
		}
		if next == "" {
			break
		}
		page = next
	}
	assert.Len(t, seen, len(held))
	assert.GreaterOrEqual(t, pages, 6, "60 items read 10 at a time")
	assert.LessOrEqual(t, pages, 7)
}
