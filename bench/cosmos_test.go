package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/cosmos"
)

// reportCosmos prints the Cosmos DB table of BENCHMARKS.md: hasp serve on
// the Cosmos DB emulator (@vercel/cosmosdb-server, Node, one process),
// measured as the embedded etcd is in TestReport, whose hasp figures
// (etcdCycles per second, etcdHandoffs) it is compared with; and the
// latency of one point read and of one conditional patch on the same
// emulator, the costs a cycle is made of.
func reportCosmos(t *testing.T, etcdCycles float64, etcdHandoffs []time.Duration) {
	e := launch.Cosmos(t)
	rt := e.Transport()
	cfg := cosmos.Config{
		Endpoint: e.Endpoint, Key: launch.CosmosKey, Database: "bench", Container: "locks",
		ClientOptions: &azcosmos.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: rt}}},
	}
	ctx := context.Background()
	if err := cosmos.CreateContainer(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	open := func() *cosmos.Provider {
		p, err := cosmos.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	s := newProviderStack(t, p)
	for range 50 {
		if err := s.haspCycle("warm"); err != nil {
			t.Fatal(err)
		}
	}

	// Baseline: one point read of an existing document.
	client, err := cosmos.NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := client.NewContainer("bench", "locks")
	if err != nil {
		t.Fatal(err)
	}
	id := base64.RawURLEncoding.EncodeToString([]byte("warm")) // the document of "warm"
	var reads []time.Duration
	for range 300 {
		start := time.Now()
		if _, err := c.ReadItem(ctx, azcosmos.NewPartitionKeyString(id), id, nil); err != nil {
			t.Fatal(err)
		}
		reads = append(reads, time.Since(start))
	}
	rtt := pct(reads, 0.5)

	// And one conditional patch: a renew, straight on the provider.
	l, err := p.Acquire(ctx, lock.AcquireRequest{Name: "renewed", TTL: time.Minute, LeaseID: "bench-lease-id-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	var patches []time.Duration
	for range 300 {
		start := time.Now()
		if _, err := p.Renew(ctx, lock.RenewRequest{Name: l.Name, LeaseID: l.LeaseID}); err != nil {
			t.Fatal(err)
		}
		patches = append(patches, time.Since(start))
	}

	before := p.BackendRequests()
	res := testing.Benchmark(benchHaspCycle(s))
	cps := float64(res.N) / res.T.Seconds()
	reqPerCycle := float64(p.BackendRequests()-before) / float64(res.N)

	const contenders, n = 4, 1000
	before = p.BackendRequests()
	hd, err := handoffs(contenders, n, time.Millisecond, 0, s.haspLocker("report-handoff"))
	if err != nil {
		t.Fatal(err)
	}
	reqContended := float64(p.BackendRequests()-before-n) / n // n releases, one request each when uncontended

	// Four service instances (as four Function instances would be): they
	// hear of a release only by polling. As in the AWS table, each client
	// holds 5 ms and thinks 5 ms, so that a releasing client does not
	// simply take the lock straight back.
	const nFour = instancesHandoffGrants
	fd, reqs := instancesHandoff(t, contenders, open)
	reqFour := float64(reqs-nFour) / nFour

	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	fmt.Printf("\nbaseline: one Cosmos DB point read on the emulator, p50 %s (%d reads); one conditional patch (a renew), p50 %s\n", ms(rtt), len(reads), ms(pct(patches, 0.5)))
	printTable("hasp serve on Cosmos DB (emulator)", "hasp serve on the embedded etcd (above)", cps, etcdCycles, contenders, hd, etcdHandoffs,
		fmt.Sprintf("| backend requests per uncontended cycle | %.2f | | |", reqPerCycle),
		fmt.Sprintf("| uncontended cycle, in point reads | %.1f× | | |", float64(time.Second)/cps/float64(rtt)),
		fmt.Sprintf("| requests per contended acquire, one service instance | %.2f | | |", reqContended),
		fmt.Sprintf("| handoff p50 / p99, 4 service instances (polling only), hold 5 ms, think 5 ms | %s / %s (%d handoffs in %d grants) | | |", ms(pct(fd, 0.5)), ms(pct(fd, 0.99)), len(fd), nFour),
		fmt.Sprintf("| requests per contended acquire, 4 service instances | %.2f | | |", reqFour))
}
