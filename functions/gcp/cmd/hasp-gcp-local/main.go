// Command hasp-gcp-local runs hasp's Cloud Function on this machine with
// the Functions Framework, as `make run-gcp` does. Without HASP_STORE it
// starts the Cloud Spanner emulator (from the machine's Google Cloud SDK),
// creates an instance, a database and the lock table in it, and serves
// over that; with HASP_STORE (and SPANNER_EMULATOR_HOST for an emulator
// of your own) it serves over that store.
//
// It listens on 127.0.0.1:$PORT (8081 by default) and serves every path.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/hasplock/hasp/functions/gcp"
	"github.com/hasplock/hasp/local/testbed/spanneremu"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/spanner"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hasp-gcp-local:", err)
		os.Exit(1)
	}
}

// checkStore opens the store the function will use and pings it.
func checkStore(store string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := providers.Open(ctx, store)
	if err != nil {
		return fmt.Errorf("HASP_STORE=%s: %w", store, err)
	}
	defer p.Close()
	if err := p.Ping(ctx); err != nil {
		return fmt.Errorf("HASP_STORE=%s does not answer: %w", store, err)
	}
	return nil
}

func run() error {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8081"
	}
	store := os.Getenv("HASP_STORE")
	if store == "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		emu, err := spanneremu.Start(ctx, nil)
		if err != nil {
			return err
		}
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			<-stop
			emu.Stop()
			os.Exit(0)
		}()
		db, err := spanneremu.CreateDatabase(ctx, emu.Addr, "local", "hasp", "locks", spanner.DDL(spanner.DefaultTable))
		if err != nil {
			emu.Stop()
			return err
		}
		store = "spanner://" + db
		if err := os.Setenv("SPANNER_EMULATOR_HOST", emu.Addr); err != nil {
			return err
		}
		if err := os.Setenv("HASP_STORE", store); err != nil {
			return err
		}
		fmt.Printf("Cloud Spanner emulator on %s (data in memory, gone at exit)\n", emu.Addr)
	}
	// Say at once what the function would only say per request: a store
	// it cannot open or reach.
	if err := checkStore(store); err != nil {
		return err
	}
	if err := os.Setenv("FUNCTION_TARGET", gcp.EntryPoint); err != nil {
		return err
	}
	// The Functions Framework binds the port itself; check it is free
	// first, so that "listening" is not printed for a port in use.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return err
	}
	_ = l.Close()
	fmt.Printf("hasp Cloud Function %q listening on http://127.0.0.1:%s (store %s)\n", gcp.EntryPoint, port, store)
	return funcframework.StartHostPort("127.0.0.1", port)
}
