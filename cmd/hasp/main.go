// Command hasp is hasp's one CLI: it serves the lock API (`hasp serve`) and
// will call it (acquire, renew, release, status, run).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	_ "github.com/hasplock/hasp/local" // registers the embedded: store
	_ "github.com/hasplock/hasp/providers/etcd"
	_ "github.com/hasplock/hasp/providers/memory"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasp:", err)
		os.Exit(exitCode(err))
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "hasp",
		Short:         "hasp is a distributed lock service with leases and fencing tokens",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe())
	return root
}

// exitCode maps an error to the process exit code.
func exitCode(err error) int { return 1 }
