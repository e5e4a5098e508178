package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/hasplock/hasp/bench/loadgen"
	"github.com/hasplock/hasp/client"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/service"
)

// storeTarget locks through the lock service straight on a store.
type storeTarget struct {
	svc     *service.Service
	counter providers.RequestCounter
}

func (s storeTarget) Acquire(ctx context.Context, name string, ttl, wait time.Duration) (string, error) {
	l, err := s.svc.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: ttl, Wait: wait, Owner: "hasp-bench"})
	return l.LeaseID, err
}

func (s storeTarget) Release(ctx context.Context, name, id string) error {
	return s.svc.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: id})
}

func (s storeTarget) BackendRequests() int64 {
	if s.counter == nil {
		return -1
	}
	return s.counter.BackendRequests()
}

// httpTarget locks through an HTTP endpoint with the client SDK.
type httpTarget struct{ c *client.Client }

func (h httpTarget) Acquire(ctx context.Context, name string, ttl, wait time.Duration) (string, error) {
	l, err := h.c.AcquireOnce(ctx, lock.AcquireRequest{Name: name, TTL: ttl, Wait: wait, Owner: "hasp-bench"})
	return l.LeaseID, err
}

func (h httpTarget) Release(ctx context.Context, name, id string) error {
	return h.c.ReleaseLease(ctx, name, id)
}

func (httpTarget) BackendRequests() int64 { return -1 }

func newBench(f *clientFlags) *cobra.Command {
	var (
		store        string
		cfg          loadgen.Config
		progressFlag bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a hasp endpoint (--endpoint) or a store directly (--store)",
		Long: `bench runs --workers concurrent clients over --names lock names for --duration:
each acquires (waiting up to --wait on the server), holds for --hold and
releases. It reports cycles per second, acquire and release latency
percentiles, handoff latency (from a release to a waiting worker's grant) and,
against a store, backend requests per acquire+release.`,
		Example: `  # uncontended, through a running hasp serve
  hasp bench --endpoint http://127.0.0.1:8080 --workers 1 --names 1 --hold 0 --duration 10s

  # 4 contenders on one name holding 5 ms, straight on DynamoDB, as JSON
  AWS_REGION=us-east-1 hasp bench --store dynamodb://locks --workers 4 --names 1 --hold 5ms --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var tg loadgen.Target
			if store != "" {
				p, err := providers.Open(ctx, store)
				if err != nil {
					return err
				}
				svc := service.New(p)
				defer svc.Close()
				counter, _ := p.(providers.RequestCounter)
				tg = storeTarget{svc: svc, counter: counter}
			} else {
				c, err := f.client(ctx)
				if err != nil {
					return err
				}
				tg = httpTarget{c}
			}
			var progress func(loadgen.Progress)
			if progressFlag || (!f.asJSON && isTerminal(os.Stderr)) {
				progress = func(p loadgen.Progress) {
					fmt.Fprintf(os.Stderr, "\r%5.1fs / %s  %8d cycles  %8.0f/s ", p.Elapsed.Seconds(), cfg.Duration, p.Cycles, float64(p.Cycles)/p.Elapsed.Seconds())
				}
			}
			res := loadgen.Run(ctx, tg, cfg, progress)
			if progress != nil {
				fmt.Fprintln(os.Stderr)
			}
			if f.asJSON {
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(res); err != nil {
					return err
				}
			} else {
				printBench(cmd.OutOrStdout(), res)
			}
			if res.Cycles == 0 {
				return errors.New("no acquire+release cycle completed: " + res.FirstError)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&store, "store", "", "benchmark a store directly (embedded:PATH, etcd://…, dynamodb://…, cosmos://…, memory:) instead of --endpoint")
	fl.IntVar(&cfg.Workers, "workers", 4, "concurrent clients")
	fl.IntVar(&cfg.Names, "names", 1, "lock names the clients share")
	fl.DurationVar(&cfg.Hold, "hold", 5*time.Millisecond, "how long each granted lock is held")
	fl.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to run")
	fl.DurationVar(&cfg.TTL, "ttl", 30*time.Second, "lease time-to-live")
	fl.DurationVar(&cfg.Wait, "wait", 20*time.Second, "server-side wait for a held lock (wait_ms)")
	fl.BoolVar(&progressFlag, "progress", false, "show progress even when stderr is not a terminal")
	return cmd
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func printBench(w io.Writer, r loadgen.Result) {
	fmt.Fprintf(w, "%d workers, %d names, hold %s, ttl %s, wait %s, %.1fs\n",
		r.Config.Workers, r.Config.Names, r.Config.Hold, r.Config.TTL, r.Config.Wait, r.ElapsedS)
	fmt.Fprintf(w, "cycles:    %d (%.1f/s), %d held after waiting, %d errors", r.Cycles, r.CyclesPerSecond, r.Held, r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(w, " (first: %s)", r.FirstError)
	}
	fmt.Fprintln(w)
	for _, p := range []struct {
		name string
		p    loadgen.Percentiles
	}{{"acquire", r.Acquire}, {"release", r.Release}, {"handoff", r.Handoff}} {
		fmt.Fprintf(w, "%-10s p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (n=%d)\n", p.name+":", p.p.P50, p.p.P90, p.p.P99, p.p.Max, p.p.Count)
	}
	if r.BackendRequestsPerCycle >= 0 {
		fmt.Fprintf(w, "backend:   %.2f requests per acquire+release\n", r.BackendRequestsPerCycle)
	}
}
