package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/zookeeper"
)

type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

// reportZooKeeper prints the ZooKeeper tables of BENCHMARKS.md: hasp serve
// on a real ZooKeeper 3.8 server (standalone on loopback, fsync on, as the
// embedded etcd runs), measured in the same run and the same way as the
// embedded etcd in TestReport, whose hasp figures (etcdCycles per second,
// etcdHandoffs) it is compared with; then go-zookeeper's own lock recipe
// (zk.Lock: ephemeral sequential znodes, a watch on the predecessor) on
// the same server through in-process clients, as etcd's concurrency.Mutex
// is the etcd baseline; and the latency of one read and one conditional
// SetData, the costs a cycle is made of.
func reportZooKeeper(t *testing.T, etcdCycles float64, etcdHandoffs []time.Duration) {
	zks := launch.ZooKeeper(t, launch.ZooKeeperOptions{Fsync: true})
	open := func() *zookeeper.Provider {
		p, err := zookeeper.New([]string{zks.Addr})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	connect := func() *zk.Conn {
		c, _, err := zk.Connect([]string{zks.Addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	p := open()
	s := newProviderStack(t, p)
	// Cycles and requests, uncontended and with 4 contenders (measure warms
	// the stack up first, which also creates the znode of lock "warm").
	const contenders, n = 4, 1000
	f := measure(t, counted{name: "zookeeper", s: s, c: p})
	cps, reqPerCycle, hd, reqContended := f.cycles, f.reqPerCycle, f.handoffs, f.reqPerContended

	// Baselines: one read of a lock's znode, one conditional SetData.
	conn := connect()
	for _, path := range []string{"/bench", "/bench/set", "/bench/zklock"} {
		if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatal(err)
		}
	}
	var reads, sets []time.Duration
	for range 300 {
		start := time.Now()
		if _, _, err := conn.Get(zookeeper.DefaultPrefix + "/warm"); err != nil {
			t.Fatal(err)
		}
		reads = append(reads, time.Since(start))
	}
	_, st, err := conn.Get("/bench/set")
	if err != nil {
		t.Fatal(err)
	}
	for range 300 {
		start := time.Now()
		if st, err = conn.Set("/bench/set", []byte("x"), st.Version); err != nil {
			t.Fatal(err)
		}
		sets = append(sets, time.Since(start))
	}

	// Four service instances, each with its own sessions: a release on
	// one is heard by the others' watches. Each client holds 5 ms and
	// thinks 5 ms, as in the Cosmos DB and AWS tables.
	const nFour = instancesHandoffGrants
	fd, reqs := instancesHandoff(t, contenders, open)
	reqFour := float64(reqs) / nFour

	// The client's own recipe, uncontended and with 4 contenders (one
	// session each), on the same server.
	zl := zk.NewLock(conn, "/bench/zklock/cycle", zk.WorldACL(zk.PermAll))
	lockRes := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			if err := zl.Lock(); err != nil {
				b.Fatal(err)
			}
			if err := zl.Unlock(); err != nil {
				b.Fatal(err)
			}
		}
	})
	lockCps := float64(lockRes.N) / lockRes.T.Seconds()
	var locks []*zk.Lock
	for range contenders {
		locks = append(locks, zk.NewLock(connect(), "/bench/zklock/handoff", zk.WorldACL(zk.PermAll)))
	}
	ld, err := handoffs(contenders, n, time.Millisecond, 0, func(_ context.Context, c int) (func() error, error) {
		if err := locks[c].Lock(); err != nil {
			return nil, err
		}
		return locks[c].Unlock, nil
	})
	if err != nil {
		t.Fatal(err)
	}

	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	fmt.Printf("\nbaseline: one ZooKeeper read p50 %s (%d reads); one conditional SetData p50 %s (fsync on)\n", ms(pct(reads, 0.5)), len(reads), ms(pct(sets, 0.5)))
	printTable("hasp serve on ZooKeeper", "hasp serve on the embedded etcd (above)", cps, etcdCycles, contenders, hd, etcdHandoffs,
		fmt.Sprintf("| backend requests per uncontended cycle | %.2f | | |", reqPerCycle),
		fmt.Sprintf("| uncontended cycle, in conditional SetData | %.1f× | | |", float64(time.Second)/cps/float64(pct(sets, 0.5))),
		fmt.Sprintf("| requests per contended acquire+release, one service instance | %.2f | | |", reqContended),
		fmt.Sprintf("| handoff p50 / p99, 4 service instances (watches), hold 5 ms, think 5 ms | %s / %s (%d handoffs in %d grants) | | |", ms(pct(fd, 0.5)), ms(pct(fd, 0.99)), len(fd), nFour),
		fmt.Sprintf("| requests per contended acquire+release, 4 service instances | %.2f | | |", reqFour))
	printTable("hasp serve on ZooKeeper (above)", "go-zookeeper zk.Lock (same server, in-process clients)", cps, lockCps, contenders, hd, ld)
}
