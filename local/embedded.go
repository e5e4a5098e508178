// Package local is "the cloud on one laptop": the embedded single-node etcd
// that `hasp serve` uses by default (store URL "embedded:PATH"), the one
// production package here. What starts the local emulators and disturbs
// them for tests is in local/testbed, which production code never imports.
package local

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"

	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/etcd"
)

// DefaultDataDir is where "embedded:" keeps its data when no path is given.
const DefaultDataDir = "./.hasp-data"

func init() {
	providers.Register("embedded", OpenEmbedded)
}

// Embedded is an in-process single-node etcd and a client to it.
type Embedded struct {
	// Etcd is the running server.
	Etcd *embed.Etcd
	// Client talks to the server in process, without a network hop.
	Client *clientv3.Client
	// Dir is the data directory.
	Dir string

	closeOnce sync.Once
}

// EmbeddedOptions tunes StartEmbedded.
type EmbeddedOptions struct {
	// UnsafeNoFsync skips fsync: faster, but a machine crash can lose
	// acknowledged writes, and with them fencing-token order. For tests only.
	UnsafeNoFsync bool
	// ClientURL, when set (e.g. "http://127.0.0.1:2379"), also serves etcd's
	// client API there, for etcdctl or a second service instance.
	ClientURL string
	// ClientTLS, when set with ClientURL "https://...", serves the client
	// API over TLS with these files (and requires client certificates when
	// its ClientCertAuth is set).
	ClientTLS *transport.TLSInfo
	// LogLevel is etcd's own log level ("debug" ... "panic"); the default,
	// "panic", keeps etcd quiet, including its noise on shutdown.
	LogLevel string
}

// StartEmbedded starts a single-node etcd keeping its data in dir (created
// if missing). Data survives restarts, and so do fencing tokens: they are
// etcd revisions. Leader election settings are tuned so that leases can be
// as short as one second.
func StartEmbedded(ctx context.Context, dir string, o EmbeddedOptions) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "hasp"
	cfg.Dir = abs
	cfg.LogLevel = "panic"
	if o.LogLevel != "" {
		cfg.LogLevel = o.LogLevel
	}
	// A single member elects itself at once; a short tick makes etcd's
	// minimum lease TTL (1.5 election timeouts) round to one second.
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "10m"
	cfg.UnsafeNoFsync = o.UnsafeNoFsync
	// The peer listener is never dialled by a single member; it listens on
	// a free port, while the advertised URL stays the same across restarts
	// as the membership stored in dir expects.
	peerListen, _ := url.Parse("http://127.0.0.1:0")
	peerAdvertise, _ := url.Parse("http://127.0.0.1:2380")
	cfg.ListenPeerUrls = []url.URL{*peerListen}
	cfg.AdvertisePeerUrls = []url.URL{*peerAdvertise}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	clientURL := "http://127.0.0.1:0"
	if o.ClientURL != "" {
		clientURL = o.ClientURL
	}
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: client URL: %w", err)
	}
	if o.ClientTLS != nil {
		cfg.ClientTLSInfo = *o.ClientTLS
	}
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd in %s: %w", abs, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("embedded etcd: not ready after 60s")
	}
	return &Embedded{Etcd: e, Client: v3client.New(e.Server), Dir: abs}, nil
}

// Close stops the client and the server. It may be called more than once.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		_ = e.Client.Close() // the in-process client reports context.Canceled
		e.Etcd.Close()
		<-e.Etcd.Server.StopNotify()
	})
	return nil
}

// ClientURL returns the address etcd's client API listens on.
func (e *Embedded) ClientURL() string {
	scheme := "http://"
	if !e.Etcd.Config().ClientTLSInfo.Empty() {
		scheme = "https://"
	}
	return scheme + e.Etcd.Clients[0].Addr().String()
}

// OpenEmbedded opens the provider for "embedded:PATH" (default
// DefaultDataDir): an etcd provider over an in-process etcd that the
// provider owns and stops on Close.
func OpenEmbedded(ctx context.Context, u *url.URL) (providers.Provider, error) {
	if err := providers.CheckParams(u); err != nil {
		return nil, err
	}
	dir := u.Opaque
	if dir == "" {
		dir = u.Path
	}
	if u.Host != "" {
		dir = u.Host + u.Path // "embedded://data" is read as a relative path
	}
	if dir == "" {
		dir = DefaultDataDir
	}
	e, err := StartEmbedded(ctx, dir, EmbeddedOptions{})
	if err != nil {
		return nil, err
	}
	return etcd.New(e.Client, etcd.WithCloser(e.Close)), nil
}
