package etcd

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.uber.org/zap"

	"github.com/hasplock/hasp/providers"
)

func init() {
	providers.Register("etcd", Open)
}

// Open opens the provider for
// "etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][?prefix=P&ca=FILE&cert=FILE&key=FILE&tls=true]".
// ca (the CA bundle that signed the servers' certificates), cert and key
// (a client certificate, for servers that require one) switch the client
// to TLS, as does tls=true (system roots); user and password, if given,
// authenticate with etcd's auth, and need TLS unless insecure=true says
// that sending them in clear text is intended. Unknown parameters are
// refused, so that a misspelt one cannot silently turn TLS off.
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("etcd: store URL %q names no endpoint (etcd://host:2379)", u.Redacted())
	}
	if err := providers.CheckParams(u, "prefix", "ca", "cert", "key", "tls", "insecure"); err != nil {
		return nil, err
	}
	q := u.Query()
	flag := func(name string) (bool, error) {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, fmt.Errorf("etcd: store URL %q: %s=%q is not a boolean", u.Redacted(), name, v)
			}
			return b, nil
		}
		return false, nil
	}
	wantTLS, err := flag("tls")
	if err != nil {
		return nil, err
	}
	insecure, err := flag("insecure")
	if err != nil {
		return nil, err
	}
	tlsInfo := transport.TLSInfo{TrustedCAFile: q.Get("ca"), CertFile: q.Get("cert"), KeyFile: q.Get("key")}
	if (tlsInfo.CertFile == "") != (tlsInfo.KeyFile == "") {
		return nil, fmt.Errorf("etcd: store URL %q: cert and key go together", u.Redacted())
	}
	useTLS := wantTLS || tlsInfo.TrustedCAFile != "" || tlsInfo.CertFile != ""
	if q.Has("tls") && !wantTLS && useTLS {
		return nil, fmt.Errorf("etcd: store URL %q: tls=false contradicts ca/cert/key", u.Redacted())
	}
	if u.User != nil && !useTLS && !insecure {
		return nil, fmt.Errorf("etcd: store URL %q: a user and password need TLS (ca=, tls=true), or insecure=true to send them in clear text", u.Redacted())
	}
	cfg := clientv3.Config{
		DialTimeout: 5 * time.Second,
		Context:     context.Background(),
		Logger:      zap.NewNop(),
	}
	scheme := "http://"
	if useTLS {
		scheme = "https://"
		tc, err := tlsInfo.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd: TLS configuration: %w", err)
		}
		tc.MinVersion = tls.VersionTLS12
		cfg.TLS = tc
	}
	for _, h := range strings.Split(u.Host, ",") {
		cfg.Endpoints = append(cfg.Endpoints, scheme+h)
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: connect %v: %w", cfg.Endpoints, err)
	}
	var opts []Option
	if p := q.Get("prefix"); p != "" {
		opts = append(opts, WithPrefix(p))
	}
	opts = append(opts, WithCloser(cli.Close))
	return New(cli, opts...), nil
}
