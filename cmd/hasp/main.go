// Command hasp is hasp's one CLI: it serves the lock API (`hasp serve`) and
// will call it (acquire, renew, release, status, run).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	_ "github.com/hasplock/hasp/local" // registers the embedded: store
	_ "github.com/hasplock/hasp/providers/cosmos"
	_ "github.com/hasplock/hasp/providers/dynamodb"
	_ "github.com/hasplock/hasp/providers/etcd"
	_ "github.com/hasplock/hasp/providers/memory"
	_ "github.com/hasplock/hasp/providers/redis"
	_ "github.com/hasplock/hasp/providers/spanner"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ce childExit
		if !errors.As(err, &ce) {
			fmt.Fprintln(os.Stderr, "hasp:", err)
		}
		os.Exit(exitCode(err))
	}
}

// version is set at build time (make build, make image: -X main.version=).
var version = "dev"

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:     "hasp",
		Version: version,
		Short:   "hasp is a distributed lock service with leases and fencing tokens",
		Long: `hasp is a distributed lock service with leases and fencing tokens.

"hasp serve" runs the service; the other commands call it (--endpoint,
default http://127.0.0.1:8080).

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var f clientFlags
	for _, c := range []*cobra.Command{newAcquire(&f), newRenew(&f), newRelease(&f), newStatus(&f), newRun(&f), newBench(&f)} {
		f.register(c)
		root.AddCommand(c)
	}
	root.AddCommand(newServe(), newDynamoDB(), newSpanner(), newCosmos())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return root
}
