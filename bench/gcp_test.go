package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/local/testbed/spanneremu"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/spanner"
	"github.com/hasplock/hasp/service"
)

// newProviderStack puts hasp serve's handler over p on a loopback HTTP
// server (no etcd of its own: s.e is nil).
func newProviderStack(tb testing.TB, p providers.Provider) *stack {
	srv := httptest.NewServer(api.New(service.New(p)))
	tb.Cleanup(func() { srv.Close(); _ = p.Close() })
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	return &stack{srv: srv, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// cycles measures uncontended acquire+release cycles per second through s.
func cycles(t *testing.T, s *stack) float64 {
	for range 20 {
		if err := s.haspCycle("warm"); err != nil {
			t.Fatal(err)
		}
	}
	r := testing.Benchmark(benchHaspCycle(s))
	return float64(r.N) / r.T.Seconds()
}

// TestReportGCP prints the Spanner table of BENCHMARKS.md (HASP_BENCH=1,
// make bench): hasp serve's handler over the Spanner emulator, with the
// embedded-etcd stack measured in the same run as the baseline.
// Indicative only: the emulator runs one read-write transaction at a time
// and is not Spanner's performance.
func TestReportGCP(t *testing.T) {
	if os.Getenv("HASP_BENCH") == "" {
		t.Skip("set HASP_BENCH=1 (make bench) to run the benchmark report")
	}
	base := newStack(t)
	e := launch.Spanner(t)
	db, err := spanneremu.CreateDatabase(context.Background(), e.Addr, "bench", "bench", "locks", spanner.DDL(spanner.DefaultTable))
	if err != nil {
		t.Fatal(err)
	}
	p, err := spanner.New(context.Background(), db, spanner.WithClientOptions(e.ClientOptions()...))
	if err != nil {
		t.Fatal(err)
	}
	sp := newProviderStack(t, p)
	bps := cycles(t, base)
	sps := cycles(t, sp)
	before := p.BackendRequests()
	const n = 200
	for range n {
		if err := sp.haspCycle("count"); err != nil {
			t.Fatal(err)
		}
	}
	perCycle := float64(p.BackendRequests()-before) / n

	const contenders, grants = 4, 300
	bd, err := handoffs(contenders, grants, time.Millisecond, 0, base.haspLocker("report-handoff"))
	if err != nil {
		t.Fatal(err)
	}
	sd, err := handoffs(contenders, grants, time.Millisecond, 0, sp.haspLocker("report-handoff"))
	if err != nil {
		t.Fatal(err)
	}
	printTable("hasp serve over the Spanner emulator", "hasp serve over embedded etcd (baseline, same run)", sps, bps, contenders, sd, bd,
		fmt.Sprintf("| Spanner RPCs per uncontended cycle | %.1f | | |", perCycle))
}
