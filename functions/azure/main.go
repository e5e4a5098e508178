// Command handler is hasp's Azure Functions custom handler: the Functions
// host starts it, and proxies every HTTP request of the function app to it
// on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT, where it serves API v1 over
// the store named by HASP_STORE (cosmos://DATABASE/CONTAINER). `make
// build-azure` builds it for linux/amd64 into the deployable folder
// dist/azure, next to host.json and the function definitions from app/.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hasplock/hasp/functions/azure/customhandler"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cfg, err := customhandler.ConfigFromEnv()
	if err == nil {
		err = customhandler.Run(ctx, cfg, os.Stdout)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasp custom handler:", err)
		os.Exit(1)
	}
}
