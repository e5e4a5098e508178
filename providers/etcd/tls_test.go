package etcd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/service"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, as PEM files in dir.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hasp test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		kb, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		return write(cn+".crt", "CERTIFICATE", der), write(cn+".key", "EC PRIVATE KEY", kb)
	}
	p := pki{ca: write("ca.crt", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue(2, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientCert, p.clientKey = issue(3, "client", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// TestOpenTLS: etcd://…?ca=&cert=&key= reaches an etcd that serves TLS and
// requires client certificates; without the client certificate, or
// without the CA, it does not.
func TestOpenTLS(t *testing.T) {
	certs := newPKI(t, t.TempDir())
	e, err := local.StartEmbedded(context.Background(), t.TempDir(), local.EmbeddedOptions{
		UnsafeNoFsync: true, ClientURL: "https://127.0.0.1:0",
		ClientTLS: &transport.TLSInfo{CertFile: certs.serverCert, KeyFile: certs.serverKey, TrustedCAFile: certs.ca, ClientCertAuth: true},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	host := e.Etcd.Clients[0].Addr().String()
	q := url.Values{"ca": {certs.ca}, "cert": {certs.clientCert}, "key": {certs.clientKey}, "prefix": {"tls/"}}

	ctx := context.Background()
	p, err := providers.Open(ctx, "etcd://"+host+"?"+q.Encode())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	s := service.New(p)
	require.NoError(t, s.Ping(ctx))
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))

	for name, bad := range map[string]url.Values{
		"no client certificate": {"ca": {certs.ca}},
		"no CA (system roots)":  {"tls": {"true"}, "cert": {certs.clientCert}, "key": {certs.clientKey}},
		"plain text":            {},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := providers.Open(ctx, "etcd://"+host+"?"+bad.Encode())
			require.NoError(t, err, "clients connect lazily")
			defer p.Close()
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			assert.Error(t, p.Ping(pctx))
		})
	}
	for bad, msg := range map[string]string{
		"?cert=" + url.QueryEscape(certs.clientCert): "cert and key go together",
		"?cacert=" + url.QueryEscape(certs.ca):       "unknown parameter",
		"?tls=yes":                                   "not a boolean",
		"?tls=false&ca=" + url.QueryEscape(certs.ca): "contradicts",
	} {
		_, err = providers.Open(ctx, "etcd://"+host+bad)
		assert.ErrorContains(t, err, msg, bad)
	}
	_, err = providers.Open(ctx, "etcd://user:secret@"+host)
	assert.ErrorContains(t, err, "need TLS")
	assert.NotContains(t, err.Error(), "secret", "the password is redacted")
	// With insecure=true the URL is accepted; this server speaks only TLS,
	// so the (eager) authentication then fails to connect.
	p2, err := providers.Open(ctx, "etcd://user:secret@"+host+"?insecure=true")
	if err == nil {
		_ = p2.Close()
	} else {
		assert.NotContains(t, err.Error(), "need TLS", "clear-text credentials when asked for")
	}
	_, err = providers.Open(ctx, "etcd://"+host+"?ca=/nonexistent/ca.crt")
	assert.Error(t, err)
}
