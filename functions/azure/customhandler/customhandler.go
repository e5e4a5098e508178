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
	"github.com/hasplock/hasp/app"
	_ "github.com/hasplock/hasp/providers/cosmos" // cosmos://DATABASE/CONTAINER
)

// Config is the handler's configuration, from the function app's settings.
type Config struct {
	// Port is where to listen on 127.0.0.1, from
	// FUNCTIONS_CUSTOMHANDLER_PORT (set by the Functions host).
	Port string
	// Config is the app's (app.ConfigFromEnv: HASP_STORE, e.g.
	// cosmos://DATABASE/CONTAINER, whose provider reads COSMOS_ENDPOINT and
	// COSMOS_KEY; HASP_LOG_LEVEL).
	app.Config
}

// ConfigFromEnv reads the configuration from the environment.
func ConfigFromEnv() (Config, error) {
	c, err := app.ConfigFromEnv()
	return Config{Port: os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"), Config: c}, err
}

// Run assembles the app (logs as JSON lines on w, which the Functions host
// collects; metrics and traces over OTLP when the OTEL_* app settings ask),
// listens on 127.0.0.1:cfg.Port and serves API v1 until ctx ends, then
// shuts down gracefully (app.ShutdownGrace).
func Run(ctx context.Context, cfg Config, w io.Writer) error {
	if cfg.Port == "" {
		return errors.New("FUNCTIONS_CUSTOMHANDLER_PORT is not set (the Functions host sets it)")
	}
	if cfg.Store == "" {
		return errors.New("HASP_STORE is not set (e.g. cosmos://hasp/locks)")
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
	cfg.Metrics = app.MetricsOTLP
	a, err := app.New(ctx, cfg.Config)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(sctx)
	}()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", cfg.Port))
	if err != nil {
		return err
	}
	srv := api.NewServer(WithoutFunctionKey(a.Handler()))
	a.Logger().Info("hasp custom handler listening", "url", "http://"+ln.Addr().String(), "provider", a.Provider(), "store", cfg.Store)
	return api.Serve(ctx, srv, ln, app.ShutdownGrace)
}

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
