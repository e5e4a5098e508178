// Package gcp is hasp's Google Cloud Function (Cloud Run functions, Go
// runtime): the one API v1 handler registered with the Functions Framework
// under the entry point "Hasp", over the store named by HASP_STORE
// (spanner://projects/P/instances/I/databases/D).
//
// Deploy it with `make build-gcp` (dist/gcp: a source folder whose root
// package imports this one, as the Go runtime requires) and `gcloud
// functions deploy` (see the README). Callers authenticate with Cloud Run's
// IAM invoker check (an ID token in the Authorization header), so hasp's
// own bearer tokens are not used here. `make run-gcp` runs it locally on
// the Spanner emulator.
//
// Every path is served by the one handler: with FUNCTION_TARGET=Hasp (set
// by the runtime, and by cmd/hasp-gcp-local) the Functions Framework
// routes all paths to it.
package gcp

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/providers"
	_ "github.com/hasplock/hasp/providers/spanner" // spanner://projects/P/instances/I/databases/D
	"github.com/hasplock/hasp/service"
)

// EntryPoint is the function's entry point (gcloud --entry-point).
const EntryPoint = "Hasp"

func init() {
	functions.HTTP(EntryPoint, Handle)
}

var fn struct {
	mu sync.Mutex
	h  http.Handler
}

// Handle serves one request. The handler is built on the first request of
// an instance (and again after a failure), so that a store that is not
// reachable yet is a 503 rather than a crashed instance.
func Handle(w http.ResponseWriter, r *http.Request) {
	h, err := handler(r.Context())
	if err != nil {
		logger().Error("hasp: opening the store failed", "error", err.Error())
		w.Header().Set("Retry-After", "1")
		api.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the lock store is not available")
		return
	}
	h.ServeHTTP(w, r)
}

func handler(ctx context.Context) (http.Handler, error) {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	if fn.h != nil {
		return fn.h, nil
	}
	store := os.Getenv("HASP_STORE")
	if store == "" {
		return nil, fmt.Errorf("HASP_STORE is not set (e.g. spanner://projects/P/instances/I/databases/D)")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	p, err := providers.Open(ctx, store)
	if err != nil {
		return nil, err
	}
	fn.h = api.New(service.New(p), api.WithLogger(logger()))
	return fn.h, nil
}

// logger writes JSON lines that Cloud Logging reads as structured entries:
// "severity" and "message" in place of slog's "level" and "msg".
func logger() *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(os.Getenv("HASP_LOG_LEVEL")))
	return slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				a.Key = "severity"
				if l, ok := a.Value.Any().(slog.Level); ok {
					a.Value = slog.StringValue(severity(l))
				}
			case slog.MessageKey:
				a.Key = "message"
			}
			return a
		},
	}))
}

// severity maps slog levels to Cloud Logging's severities.
func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}
