package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/etcd"
	_ "github.com/hasplock/hasp/providers/redis" // redis:// and redlock://
)

// counted is a stack over a provider that counts its backend requests.
type counted struct {
	name string
	s    *stack
	c    providers.RequestCounter
}

// figures are one stack's measures in TestReportRedis.
type figures struct {
	cycles, reqPerCycle, reqPerContended float64
	handoffs                             []time.Duration
}

func measure(t *testing.T, c counted) figures {
	for range 50 {
		if err := c.s.haspCycle("warm"); err != nil {
			t.Fatal(err)
		}
	}
	var f figures
	res := testing.Benchmark(benchHaspCycle(c.s))
	f.cycles = float64(res.N) / res.T.Seconds()
	const n = 500
	before := c.c.BackendRequests()
	for range n {
		if err := c.s.haspCycle("count"); err != nil {
			t.Fatal(err)
		}
	}
	f.reqPerCycle = float64(c.c.BackendRequests()-before) / n
	const contenders, grants = 4, 1000
	before = c.c.BackendRequests()
	var err error
	if f.handoffs, err = handoffs(contenders, grants, time.Millisecond, 0, c.s.haspLocker("report-handoff")); err != nil {
		t.Fatal(err)
	}
	f.reqPerContended = float64(c.c.BackendRequests()-before) / grants
	return f
}

// TestReportRedis prints the Redis table of BENCHMARKS.md (HASP_BENCH=1,
// make bench): hasp serve's handler over one redis-server (AOF everysec)
// and over a Redlock of three, side by side with the embedded etcd
// (fsync on, as `make run` uses it), all measured in this one run, each
// through HTTP on loopback.
func TestReportRedis(t *testing.T) {
	if os.Getenv("HASP_BENCH") == "" {
		t.Skip("set HASP_BENCH=1 (make bench) to run the benchmark report")
	}
	ctx := context.Background()
	e, err := local.StartEmbedded(ctx, t.TempDir(), local.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ep := etcd.New(e.Client)
	stacks := []counted{{name: "etcd (embedded)", s: newProviderStack(t, ep), c: ep}}
	open := func(name, store string) {
		p, err := providers.Open(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		stacks = append(stacks, counted{name: name, s: newProviderStack(t, p), c: p.(providers.RequestCounter)})
	}
	var addrs []string
	for range 3 {
		addrs = append(addrs, launch.Redis(t).Addr)
	}
	open("Redis (one server)", "redis://"+addrs[0]+"?prefix=single:")
	open("Redlock (3 servers)", "redlock://"+strings.Join(addrs, ","))

	var fs []figures
	for _, c := range stacks {
		fs = append(fs, measure(t, c))
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	row := func(measure string, cell func(f figures) string, ratio func(a, b figures) float64) {
		r := ""
		if ratio != nil {
			r = fmt.Sprintf("%.2f× / %.2f×", ratio(fs[1], fs[0]), ratio(fs[2], fs[0]))
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", measure, cell(fs[1]), cell(fs[2]), cell(fs[0]), r)
	}
	fmt.Printf("\n| measure | %s | %s | %s (baseline) | ratio Redis / Redlock to etcd |\n|---|---|---|---|---|\n", stacks[1].name, stacks[2].name, stacks[0].name)
	row("uncontended acquire+release cycles/s", func(f figures) string { return fmt.Sprintf("%.0f", f.cycles) },
		func(a, b figures) float64 { return a.cycles / b.cycles })
	for _, p := range []float64{0.5, 0.99} {
		row(fmt.Sprintf("handoff p%g, 4 contenders, 1 name", p*100), func(f figures) string { return ms(pct(f.handoffs, p)) },
			func(a, b figures) float64 { return float64(pct(a.handoffs, p)) / float64(pct(b.handoffs, p)) })
	}
	row("backend requests per uncontended cycle", func(f figures) string { return fmt.Sprintf("%.2f", f.reqPerCycle) },
		func(a, b figures) float64 { return a.reqPerCycle / b.reqPerCycle })
	row("backend requests per contended cycle (4 contenders)", func(f figures) string { return fmt.Sprintf("%.2f", f.reqPerContended) },
		func(a, b figures) float64 { return a.reqPerContended / b.reqPerContended })
	row("handoffs measured", func(f figures) string { return fmt.Sprint(len(f.handoffs)) }, nil)
	fmt.Println()
}
