package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/redis"
)

// soakPlan is the faults of every Redis soak, per chunk of TCP traffic:
// as etcd's soak (the client retries a request whose connection closed
// under its answer, so dropped responses also exercise the scripts'
// idempotence).
var soakPlan = faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.001, DropResponseP: 0.002, Stall: 300 * time.Millisecond, StallP: 0.001}

// soakSkews are the two service instances' clock offsets.
var soakSkews = []time.Duration{250 * time.Millisecond, -250 * time.Millisecond}

func skewed(skew time.Duration) *providertest.OffsetClock {
	c := &providertest.OffsetClock{}
	c.Set(skew)
	return c
}

// TestSoak: two service instances with clocks ±250 ms, each with its own
// client through a fault-injecting TCP proxy to one redis-server (AOF,
// appendfsync everysec), which is killed (SIGKILL) and restarted from its
// append-only file every 4 s. Size: HASP_SOAK (make soak).
func TestSoak(t *testing.T) { soak(t, 1, providertest.SoakAcquires()) }

// TestSoakSemaphore: the same with semaphores of 3 permits (permit
// tables, checked by providertest.CheckPermits; 3,000 acquires in make
// test, HASP_SOAK in make soak).
func TestSoakSemaphore(t *testing.T) { soak(t, 3, providertest.SoakAcquiresOr(3000)) }

func soak(t *testing.T, permits, acquires int) {
	srv := launch.Redis(t)
	proxy, err := faults.NewTCPProxy(srv.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	var instances []providertest.Instance
	for _, skew := range soakSkews {
		rdb := goredis.NewClient(redis.ClientOptions(proxy.Addr()))
		t.Cleanup(func() { _ = rdb.Close() })
		p, err := redis.New(context.Background(), rdb, redis.WithClock(skewed(skew)))
		require.NoError(t, err)
		instances = append(instances, providertest.Instance{Provider: p, Skew: skew})
	}
	proxy.SetPlan(soakPlan)
	restarts := 0
	res := providertest.Soak(context.Background(), instances, providertest.SoakConfig{
		Acquires: acquires, Progress: providertest.ProgressLogger(t), TTL: 2 * time.Second, Permits: permits,
		Disturb: func(ctx context.Context) {
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(4 * time.Second):
				}
				srv.Restart(t)
				restarts++
			}
		},
	})
	proxy.SetPlan(faults.Plan{})
	f := proxy.Counts()
	t.Logf("redis soak (permits %d): %s; faults injected: %d delays, %d resets, %d dropped responses, %d stalls; %d redis restarts from the AOF",
		permits, res.String(), f.Delays, f.Resets, f.DroppedResponses, f.Stalls, restarts)
	assert.Empty(t, res.Violations, res.Report())
	assert.Positive(t, f.Total(), "faults were injected")
	assert.Positive(t, restarts, "redis was restarted")
}

// TestSoakRedlock: five redis-servers, each behind its own fault-injecting
// TCP proxy, shared by two service instances with clocks ±250 ms; every
// 6 s one node is killed and the one killed before is restarted from its
// append-only file (down longer than a TTL, as Redlock's "delayed
// restart" asks), so one node of five is always down.
func TestSoakRedlock(t *testing.T) {
	const n = 5
	var (
		srvs    []*launch.RedisServer
		proxies []*faults.TCPProxy
	)
	for range n {
		srv := launch.Redis(t)
		proxy, err := faults.NewTCPProxy(srv.Addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = proxy.Close() })
		srvs, proxies = append(srvs, srv), append(proxies, proxy)
	}
	var instances []providertest.Instance
	for _, skew := range soakSkews {
		var clients []*goredis.Client
		for _, proxy := range proxies {
			c := goredis.NewClient(redis.ClientOptions(proxy.Addr()))
			t.Cleanup(func() { _ = c.Close() })
			clients = append(clients, c)
		}
		p, err := redis.NewRedlock(context.Background(), clients, redis.WithClock(skewed(skew)))
		require.NoError(t, err)
		instances = append(instances, providertest.Instance{Provider: p, Skew: skew})
	}
	for _, proxy := range proxies {
		proxy.SetPlan(soakPlan)
	}
	kills := 0
	res := providertest.Soak(context.Background(), instances, providertest.SoakConfig{
		Acquires: providertest.SoakAcquires(), Progress: providertest.ProgressLogger(t), TTL: 2 * time.Second,
		Disturb: func(ctx context.Context) {
			down := -1
			for {
				select {
				case <-ctx.Done():
					if down >= 0 {
						srvs[down].Restart(t)
					}
					return
				case <-time.After(6 * time.Second):
				}
				if down >= 0 {
					srvs[down].Restart(t)
				}
				down = kills % n
				srvs[down].Kill()
				kills++
			}
		},
	})
	var f faults.Counts
	for _, proxy := range proxies {
		proxy.SetPlan(faults.Plan{})
		c := proxy.Counts()
		f.Delays, f.Resets, f.DroppedResponses, f.Stalls = f.Delays+c.Delays, f.Resets+c.Resets, f.DroppedResponses+c.DroppedResponses, f.Stalls+c.Stalls
	}
	t.Logf("redlock soak: %s; faults injected: %d delays, %d resets, %d dropped responses, %d stalls; %d nodes of %d killed in turn, each restarted from its AOF 6 s later",
		res.String(), f.Delays, f.Resets, f.DroppedResponses, f.Stalls, kills, n)
	assert.Empty(t, res.Violations, res.Report())
	assert.Positive(t, f.Total(), "faults were injected")
	assert.Positive(t, kills, "a node was killed")
}

// TestSoakPolling: eight service instances that only poll (as Lambda
// environments do: Redis waiters poll), each with its own client, which
// retries a request whose connection closed under its answer, through ten
// times the faults of TestSoak to one redis-server. Size: HASP_SOAK, else
// 1,000 in make test.
func TestSoakPolling(t *testing.T) {
	t.Parallel() // its own server
	srv := launch.Redis(t)
	proxy, err := faults.NewTCPProxy(srv.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	const n = 8
	var instances []providertest.Instance
	for i := range n {
		skew := 250*time.Millisecond - time.Duration(i)*500*time.Millisecond/(n-1)
		rdb := goredis.NewClient(redis.ClientOptions(proxy.Addr()))
		t.Cleanup(func() { _ = rdb.Close() })
		p, err := redis.New(context.Background(), rdb, redis.WithClock(skewed(skew)))
		require.NoError(t, err)
		instances = append(instances, providertest.Instance{Provider: p, Skew: skew})
	}
	proxy.SetPlan(faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.01, DropResponseP: 0.02, Stall: 300 * time.Millisecond, StallP: 0.01})
	res := providertest.Soak(context.Background(), instances, providertest.SoakConfig{
		Acquires: providertest.SoakAcquiresOr(1000), Progress: providertest.ProgressLogger(t), TTL: 2 * time.Second,
	})
	proxy.SetPlan(faults.Plan{})
	f := proxy.Counts()
	t.Logf("redis polling soak: %s; faults injected: %d delays, %d resets, %d dropped responses, %d stalls",
		res.String(), f.Delays, f.Resets, f.DroppedResponses, f.Stalls)
	assert.Empty(t, res.Violations, res.Report())
	assert.Positive(t, f.Total(), "faults were injected")
}
