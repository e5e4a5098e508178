package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"

	"github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/local/testbed/spanneremu"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/cosmos"
	"github.com/hasplock/hasp/providers/dynamodb"
	"github.com/hasplock/hasp/providers/etcd"
	"github.com/hasplock/hasp/providers/spanner"
)

// permitCycle is one uncontended acquire+release of a permit of a
// semaphore of permits through HTTP (permits 1: a plain mutex cycle).
func (s *stack) permitCycle(name string, permits int) error {
	var l lease
	body := map[string]any{"name": name}
	if permits > 1 {
		body["permits"] = permits
	}
	if code, err := s.post("/v1/locks/acquire", body, &l); err != nil || code != 200 {
		return fmt.Errorf("acquire: %d %v", code, err)
	}
	if code, err := s.post("/v1/locks/release", map[string]any{"name": name, "lease_id": l.LeaseID}, nil); err != nil || code != 200 {
		return fmt.Errorf("release: %d %v", code, err)
	}
	return nil
}

// permitFigures are one store's measures for one permit count.
type permitFigures struct {
	cycles, reqPerCycle, contendedGrants float64
}

// measurePermits measures, through s over provider c: uncontended cycles a
// second, backend requests per cycle, and grants a second with 6 workers
// on one name (each holding 2 ms), for a mutex (permits 1) or a semaphore.
func measurePermits(t *testing.T, s *stack, c providers.RequestCounter, permits int) permitFigures {
	name := fmt.Sprintf("bench-permits-%d", permits)
	for range 20 {
		if err := s.permitCycle(name, permits); err != nil {
			t.Fatal(err)
		}
	}
	var f permitFigures
	res := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			if err := s.permitCycle(name, permits); err != nil {
				b.Fatal(err)
			}
		}
	})
	f.cycles = float64(res.N) / res.T.Seconds()
	const n = 200
	before := c.BackendRequests()
	for range n {
		if err := s.permitCycle(name, permits); err != nil {
			t.Fatal(err)
		}
	}
	f.reqPerCycle = float64(c.BackendRequests()-before) / n

	const workers, window = 6, 3 * time.Second
	var (
		grants atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Value
	)
	end := time.Now().Add(window)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				var l lease
				body := map[string]any{"name": name + "-contended", "wait_ms": 5000, "ttl_ms": 10000}
				if permits > 1 {
					body["permits"] = permits
				}
				code, err := s.post("/v1/locks/acquire", body, &l)
				if err != nil || (code != 200 && code != 409) {
					failed.Store(fmt.Errorf("acquire: %d %v", code, err))
					return
				}
				if code != 200 {
					continue
				}
				grants.Add(1)
				time.Sleep(2 * time.Millisecond)
				if code, err := s.post("/v1/locks/release", map[string]any{"name": name + "-contended", "lease_id": l.LeaseID}, nil); err != nil || code != 200 {
					failed.Store(fmt.Errorf("release: %d %v", code, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	f.contendedGrants = float64(grants.Load()) / window.Seconds()
	return f
}

// TestReportPermits prints the semaphore table of BENCHMARKS.md
// (HASP_BENCH=1, make bench): on each store, through hasp serve's handler
// on loopback, a mutex's and a semaphore's (3 permits) acquire+release,
// measured one after the other in this run: cycles a second, backend
// requests per cycle, and grants a second with 6 workers on one name.
// Stores without semaphores are listed as such.
func TestReportPermits(t *testing.T) {
	if os.Getenv("HASP_BENCH") == "" {
		t.Skip("set HASP_BENCH=1 (make bench) to run the benchmark report")
	}
	ctx := context.Background()
	type store struct {
		name string
		p    providers.Provider
	}
	var stores []store

	e, err := local.StartEmbedded(ctx, t.TempDir(), local.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	stores = append(stores, store{"etcd (embedded, fsync on)", etcd.New(e.Client)})

	moto := launch.Moto(t)
	if err := dynamodb.CreateTable(ctx, ddbClient(moto, http.DefaultTransport), "bench-permits", false); err != nil {
		t.Fatal(err)
	}
	dp, err := dynamodb.New(ddbClient(moto, http.DefaultTransport), "bench-permits")
	if err != nil {
		t.Fatal(err)
	}
	stores = append(stores, store{"DynamoDB (moto)", dp})

	se := launch.Spanner(t)
	db, err := spanneremu.CreateDatabase(ctx, se.Addr, "bench", "bench", "permits", spanner.DDL(spanner.DefaultTable))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spanner.New(ctx, db, spanner.WithClientOptions(se.ClientOptions()...))
	if err != nil {
		t.Fatal(err)
	}
	stores = append(stores, store{"Spanner (emulator)", sp})

	ce := launch.Cosmos(t)
	cfg := cosmos.Config{
		Endpoint: ce.Endpoint, Key: launch.CosmosKey, Database: "bench", Container: "permits",
		ClientOptions: &azcosmos.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: ce.Transport()}}},
	}
	if err := cosmos.CreateContainer(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cp, err := cosmos.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stores = append(stores, store{"Cosmos DB (emulator)", cp})

	fmt.Println("| store | mutex cycles/s | semaphore (3) cycles/s | ratio | requests per cycle, mutex / semaphore | grants/s, 6 workers holding 2 ms: mutex / semaphore (3) |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	for _, st := range stores {
		s := newProviderStack(t, st.p)
		rc, ok := st.p.(providers.RequestCounter)
		if !ok {
			t.Fatalf("%s does not count its requests", st.name)
		}
		if _, ok := providers.As[providers.PermitStore](st.p); !ok {
			fmt.Printf("| %s | | no semaphores (501) | | | |\n", st.name)
			continue
		}
		m := measurePermits(t, s, rc, 1)
		sem := measurePermits(t, s, rc, 3)
		fmt.Printf("| %s | %.0f | %.0f | %.2f× | %.1f / %.1f | %.0f / %.0f |\n", st.name, m.cycles, sem.cycles, sem.cycles/m.cycles,
			m.reqPerCycle, sem.reqPerCycle, m.contendedGrants, sem.contendedGrants)
	}
}
