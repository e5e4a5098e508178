package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hasplock/hasp/app"
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

  # AWS Systems Manager Parameter Store: one parameter per lock under /hasp/locks
  # (mutual exclusion and fencing; status may be stale: see the README)
  AWS_REGION=eu-west-1 hasp serve --store ssm:///hasp/locks --listen :8080

  # Azure Cosmos DB (account key, or Entra ID without COSMOS_KEY)
  COSMOS_ENDPOINT=https://myaccount.documents.azure.com:443/ hasp serve --store cosmos://hasp/locks

  # Apache ZooKeeper (locks under the znode /hasp/locks, created when missing)
  hasp serve --store zk://zk-0:2181,zk-1:2181,zk-2:2181/hasp/locks --listen :8080

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
		"store URL (env HASP_STORE): embedded:PATH, etcd://[user:pass@]host:2379[,host:2379][?prefix=P&ca=FILE&cert=FILE&key=FILE&tls=true], dynamodb://TABLE[?cleanup=720h], spanner://projects/P/instances/I/databases/D[?table=T], cosmos://DATABASE/CONTAINER, ssm:///PREFIX, zk://host:2181[,host:2181][/PREFIX][?session_timeout=10s&max_skew=1s], redis://host:6379[/DB][?durability=none], redlock://host:6379,host:6379,host:6379[?durability=none], memory: (see the README)")
	f.StringVar(&tokenFile, "auth-token-file", "", "file of bearer tokens, one per line, required on lock routes (also env HASP_AUTH_TOKENS, comma-separated)")
	f.DurationVar(&shutdownGrace, "shutdown-grace", app.ShutdownGrace, "how long to let in-flight requests finish on SIGINT/SIGTERM")
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
	acfg := app.Config{Store: cfg.store, Logger: log, AuthTokens: cfg.tokens}
	if cfg.metrics {
		acfg.Metrics = app.MetricsPrometheus
	}
	a, err := app.New(ctx, acfg)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Close(sctx); err != nil {
			log.Error("closing", "error", err.Error())
		}
	}()
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	log.Info("hasp listening", "url", url, "provider", a.Provider(), "store", redact(cfg.store), "auth", len(cfg.tokens) > 0,
		"metrics", cfg.metrics, "tracing", a.Exports())
	fmt.Fprintf(os.Stderr, "hasp: listening on %s (store %s)\n", url, redact(cfg.store))
	stop := context.AfterFunc(ctx, func() { log.Info("shutting down") })
	defer stop()
	return a.Serve(ctx, ln, cfg.grace)
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
