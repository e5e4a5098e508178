package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/telemetry"
	"github.com/hasplock/hasp/telemetry/prom"
	"github.com/hasplock/hasp/telemetry/tracing"
)

const serveExample = `  # the embedded default: a single-node etcd keeping its data in ./.hasp-data
  hasp serve

  # an existing etcd cluster, with bearer tokens required on lock routes
  HASP_AUTH_TOKENS=s3cret hasp serve --store etcd://10.0.0.1:2379,10.0.0.2:2379 --listen :8080

  # etcd over TLS with a client certificate
  hasp serve --store 'etcd://etcd-0:2379,etcd-1:2379?ca=/tls/ca.crt&cert=/tls/tls.crt&key=/tls/tls.key'

  # traces to an OpenTelemetry collector (off unless OTEL_* variables ask)
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 hasp serve

  # Cloud Spanner (Application Default Credentials; SPANNER_EMULATOR_HOST for the emulator)
  hasp serve --store spanner://projects/acme/instances/main/databases/locks --listen :8080

  # DynamoDB (region, credentials and endpoint from the AWS environment)
  AWS_REGION=eu-west-1 hasp serve --store dynamodb://locks --listen :8080

  # Azure Cosmos DB (account key, or Entra ID without COSMOS_KEY)
  COSMOS_ENDPOINT=https://myaccount.documents.azure.com:443/ hasp serve --store cosmos://hasp/locks

  # Redis with its append-only file (refused without persistence unless ?durability=none)
  hasp serve --store redis://127.0.0.1:6379

  # Redlock: a majority of independent Redis masters
  hasp serve --store redlock://10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379

  # in memory, for tests only
  hasp serve --store memory:`

func newServe() *cobra.Command {
	var (
		listen, store, tokenFile string
		shutdownGrace            time.Duration
		metrics                  bool
	)
	cmd := &cobra.Command{
		Use:     "serve",
		Short:   "Serve the lock API (HTTP API v1) over a store",
		Example: serveExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
			tokens, err := authTokens(tokenFile, os.Getenv("HASP_AUTH_TOKENS"))
			if err != nil {
				return err
			}
			return serve(cmd.Context(), log, serveConfig{listen: listen, store: store, tokens: tokens, grace: shutdownGrace, metrics: metrics})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", envOr("HASP_LISTEN", "127.0.0.1:8080"), "address to listen on (env HASP_LISTEN)")
	f.StringVar(&store, "store", envOr("HASP_STORE", "embedded:./.hasp-data"),
		"store URL (env HASP_STORE): embedded:PATH, etcd://[user:pass@]host:2379[,host:2379][?prefix=P&ca=FILE&cert=FILE&key=FILE&tls=true], dynamodb://TABLE[?cleanup=720h], spanner://projects/P/instances/I/databases/D[?table=T], cosmos://DATABASE/CONTAINER, redis://host:6379[/DB][?durability=none], redlock://host:6379,host:6379,host:6379[?durability=none], memory: (see the README)")
	f.StringVar(&tokenFile, "auth-token-file", "", "file of bearer tokens, one per line, required on lock routes (also env HASP_AUTH_TOKENS, comma-separated)")
	f.DurationVar(&shutdownGrace, "shutdown-grace", 25*time.Second, "how long to let in-flight requests finish on SIGINT/SIGTERM")
	f.BoolVar(&metrics, "metrics", true, "serve Prometheus metrics at /metrics (open, like /v1/health)")
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// authTokens reads bearer tokens from a file (one per line, # comments) and
// a comma-separated list.
func authTokens(file, list string) ([]string, error) {
	var out []string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("auth token file: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				out = append(out, line)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("auth token file %s holds no token", file)
		}
	}
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out, nil
}

// serveConfig is what `hasp serve` was asked for.
type serveConfig struct {
	listen, store string
	tokens        []string
	grace         time.Duration
	metrics       bool
}

func serve(ctx context.Context, log *slog.Logger, cfg serveConfig) error {
	listen, store, tokens, grace := cfg.listen, cfg.store, cfg.tokens, cfg.grace
	tr, err := tracing.Setup(ctx, "hasp")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Error("flushing traces", "error", err.Error())
		}
	}()
	p, err := providers.Open(ctx, store)
	if err != nil {
		return err
	}
	prom := prom.New()
	svc, h := telemetry.Instrument(p, prom, nil, api.WithLogger(log), api.WithBearerTokens(tokens...))
	defer func() {
		if err := svc.Close(); err != nil {
			log.Error("closing store", "error", err.Error())
		}
	}()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	if tr != nil {
		h = tracing.Handler(h)
	}
	if cfg.metrics {
		h = withMetrics(h, prom.Handler())
	}
	srv := api.NewServer(h)
	url := "http://" + ln.Addr().String()
	log.Info("hasp listening", "url", url, "provider", p.Name(), "store", redact(store), "auth", len(tokens) > 0,
		"metrics", cfg.metrics, "tracing", tr != nil)
	fmt.Fprintf(os.Stderr, "hasp: listening on %s (store %s)\n", url, redact(store))
	stop := context.AfterFunc(ctx, func() { log.Info("shutting down") })
	defer stop()
	return api.Serve(ctx, srv, ln, grace)
}

// withMetrics serves metrics at exactly /metrics and everything else with
// api.
func withMetrics(api, metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.EscapedPath() == "/metrics" {
			metrics.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// redact hides credentials in a store URL.
func redact(store string) string {
	if u, err := url.Parse(store); err == nil {
		return u.Redacted()
	}
	// Unparseable: keep only what precedes any credentials.
	if i := strings.Index(store, "://"); i >= 0 {
		return store[:i+3] + "xxxxx"
	}
	return "xxxxx"
}
