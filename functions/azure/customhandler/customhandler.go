// Package customhandler serves hasp's API v1 handler as an Azure Functions
// custom handler: an HTTP server on 127.0.0.1 and the port the Functions
// host gives in FUNCTIONS_CUSTOMHANDLER_PORT, to which the host proxies
// each HTTP request as it came (host.json: customHandler with
// enableProxyingHttpRequest, extensions.http.routePrefix "", so paths stay
// /v1/...). The function definitions are in ../app: "locks", every path,
// function key required (authLevel function), and "health", /v1/health,
// anonymous.
//
// The adapter adds one thing to the API handler: it removes the "code"
// query parameter, the function key that callers may pass instead of the
// x-functions-key header, which the host has already checked and which the
// API would reject as an unknown parameter.
package customhandler

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/providers"
	_ "github.com/hasplock/hasp/providers/cosmos" // cosmos://DATABASE/CONTAINER
	"github.com/hasplock/hasp/telemetry/otelsetup"
)

// Config is the handler's configuration, from the function app's settings.
type Config struct {
	// Port is where to listen on 127.0.0.1, from
	// FUNCTIONS_CUSTOMHANDLER_PORT (set by the Functions host).
	Port string
	// Store is the store URL, from HASP_STORE (cosmos://DATABASE/CONTAINER;
	// the provider reads COSMOS_ENDPOINT and COSMOS_KEY).
	Store string
	// LogLevel is the minimum level logged, from HASP_LOG_LEVEL (default
	// info).
	LogLevel slog.Level
}

// ConfigFromEnv reads the configuration from the environment.
func ConfigFromEnv() Config {
	c := Config{Port: os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"), Store: os.Getenv("HASP_STORE")}
	_ = c.LogLevel.UnmarshalText([]byte(os.Getenv("HASP_LOG_LEVEL")))
	return c
}

// Run opens the store, listens on 127.0.0.1:cfg.Port and serves API v1
// until ctx ends, then shuts down gracefully. Logs are JSON lines on w
// (the Functions host collects the handler's output).
func Run(ctx context.Context, cfg Config, w io.Writer) error {
	if cfg.Port == "" {
		return errors.New("FUNCTIONS_CUSTOMHANDLER_PORT is not set (the Functions host sets it)")
	}
	if cfg.Store == "" {
		return errors.New("HASP_STORE is not set (e.g. cosmos://hasp/locks)")
	}
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// Traces and metrics over OTLP when the OTEL_* app settings ask.
	tel, err := otelsetup.Setup(ctx, "hasp")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	p, err := providers.Open(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer p.Close()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", cfg.Port))
	if err != nil {
		return err
	}
	srv := api.NewServer(WithoutFunctionKey(tel.Handler(p, api.WithLogger(log))))
	log.Info("hasp custom handler listening", "url", "http://"+ln.Addr().String(), "provider", p.Name(), "store", cfg.Store)
	return api.Serve(ctx, srv, ln, ShutdownGrace)
}

// ShutdownGrace is how long requests in flight may finish when the host
// stops the handler (SIGTERM): longer than MaxWait plus a backend call.
const ShutdownGrace = 25 * time.Second

// WithoutFunctionKey removes every "code" parameter from the query string
// (the function key, already checked by the Functions host) and passes the
// request on with the rest of the raw query untouched.
func WithoutFunctionKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.RawQuery; q != "" {
			kept := make([]string, 0, 2)
			for _, part := range strings.Split(q, "&") {
				if key, _, _ := strings.Cut(part, "="); key != "code" {
					kept = append(kept, part)
				}
			}
			if stripped := strings.Join(kept, "&"); stripped != q {
				r = r.Clone(r.Context())
				r.URL.RawQuery = stripped
			}
		}
		next.ServeHTTP(w, r)
	})
}
