package launch

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// CosmosKey is the account key tests give the SDK: base64 of "hasp test
// key, not a secret". The emulator does not check keys; the SDK only needs
// valid base64 to sign requests with.
const CosmosKey = "aGFzcCB0ZXN0IGtleSwgbm90IGEgc2VjcmV0"

// CosmosEmulator is a running @vercel/cosmosdb-server, the Cosmos DB (NoSQL
// API) emulator the tests use.
//
// Its quirks are handled here and in scripts/cosmos_server.js, never in the
// provider: it is started from the package's createHttpsServer export with
// keep-alive (its CLI closes the connection after every response); it
// serves a certificate made for this run, valid for 127.0.0.1, instead of
// the package's expired one, so that clients verify TLS (Transport, or
// SSL_CERT_FILE for child processes, see Env); and reading a missing
// document answers 404 as Cosmos DB does (it failed with 500). It keeps its
// state in memory, accepts any key, and stores but never enforces TTL.
type CosmosEmulator struct {
	// Endpoint is the account endpoint, "https://127.0.0.1:PORT/".
	Endpoint string
	// CertFile is the PEM certificate it serves: the one root a client
	// needs to trust.
	CertFile string
	// Proc is the server process.
	Proc *Proc

	roots *x509.CertPool
}

// Cosmos starts the Cosmos DB emulator (npm @vercel/cosmosdb-server,
// installed by `make deps`) on a free loopback port and stops it when the
// test ends. Without it the test is skipped, or fails under CI=true.
func Cosmos(t testing.TB) *CosmosEmulator {
	t.Helper()
	_, ok := NodeModule(t, "@vercel/cosmosdb-server/lib/index.js")
	Require(t, ok, "@vercel/cosmosdb-server", "run `make deps` (npm ci)")
	node, err := exec.LookPath("node")
	Require(t, err == nil, "node", "Node.js comes with the machine image")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	roots, err := writeLoopbackCert(certFile, keyFile)
	if err != nil {
		t.Fatalf("making the emulator's certificate: %v", err)
	}
	port := FreePort(t)
	e := &CosmosEmulator{Endpoint: fmt.Sprintf("https://127.0.0.1:%d/", port), CertFile: certFile, roots: roots}
	script := filepath.Join(ModuleRoot(t), "local", "testbed", "launch", "scripts", "cosmos_server.js")
	hc := &http.Client{Transport: e.Transport(), Timeout: time.Second}
	ready := func() bool {
		resp, err := hc.Get(e.Endpoint)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	e.Proc = StartProc(t, "cosmosdb-server", nil, ready, node, script, "127.0.0.1", strconv.Itoa(port), certFile, keyFile)
	return e
}

// Transport returns a new HTTP transport that trusts the emulator's
// certificate (and nothing else). It replaces the SDK's tuned transport, so
// it keeps up to 64 idle connections per host (Go's default is 2, which
// would open a connection for most requests under concurrency).
func (e *CosmosEmulator) Transport() *http.Transport {
	return &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
}

// Env returns the environment a hasp process needs to use the emulator:
// COSMOS_ENDPOINT, COSMOS_KEY, and SSL_CERT_FILE so that Go's TLS trusts
// the emulator's certificate.
func (e *CosmosEmulator) Env() []string {
	return []string{"COSMOS_ENDPOINT=" + e.Endpoint, "COSMOS_KEY=" + CosmosKey, "SSL_CERT_FILE=" + e.CertFile}
}

// writeLoopbackCert writes a self-signed certificate for 127.0.0.1 and
// localhost, valid for a day, and its key, and returns a pool holding it.
func writeLoopbackCert(certFile, keyFile string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hasp test Cosmos DB emulator"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}
