package cosmos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
)

// Config says where the lock container is and how to authenticate.
type Config struct {
	// Endpoint is the account endpoint, e.g.
	// "https://ACCOUNT.documents.azure.com:443/" (required).
	Endpoint string
	// Key is the account key. Empty means Entra ID: Credential, or
	// azidentity's DefaultAzureCredential when Credential is nil.
	Key string
	// Credential authenticates with Entra ID when Key is empty.
	Credential azcore.TokenCredential
	// Database and Container name the lock container (required).
	Database, Container string
	// ClientOptions tune the SDK client (transport, retries); nil keeps
	// the SDK's defaults.
	ClientOptions *azcosmos.ClientOptions
}

// Environment variables read by ConfigFromEnv.
const (
	// EnvEndpoint names the account endpoint.
	EnvEndpoint = "COSMOS_ENDPOINT"
	// EnvKey names the account key; unset means Entra ID.
	EnvKey = "COSMOS_KEY"
)

// ConfigFromEnv returns the configuration for database and container with
// the endpoint from COSMOS_ENDPOINT and the key from COSMOS_KEY (Entra ID
// when it is unset or empty).
func ConfigFromEnv(database, container string) (Config, error) {
	cfg := Config{Endpoint: os.Getenv(EnvEndpoint), Key: os.Getenv(EnvKey), Database: database, Container: container}
	if cfg.Endpoint == "" {
		return Config{}, fmt.Errorf("cosmos: %s is not set (the account endpoint, e.g. https://ACCOUNT.documents.azure.com:443/)", EnvEndpoint)
	}
	return cfg, nil
}

// NewClient returns an SDK client for cfg's account. With requests, every
// HTTP request the client sends (retries and metadata reads included) is
// counted there.
func NewClient(cfg Config, requests *atomic.Int64) (*azcosmos.Client, error) {
	if cfg.Endpoint == "" || cfg.Database == "" || cfg.Container == "" {
		return nil, errors.New("cosmos: the endpoint, database and container are required")
	}
	var o azcosmos.ClientOptions
	if cfg.ClientOptions != nil {
		o = *cfg.ClientOptions
	}
	if o.Telemetry.ApplicationID == "" {
		o.Telemetry.ApplicationID = "hasp"
	}
	o.PerRetryPolicies = append(append([]policy.Policy(nil), o.PerRetryPolicies...), countRequests{requests})
	if cfg.Key != "" {
		cred, err := azcosmos.NewKeyCredential(cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("cosmos: account key: %w", err)
		}
		c, err := azcosmos.NewClientWithKey(cfg.Endpoint, cred, &o)
		if err != nil {
			return nil, fmt.Errorf("cosmos: %w", err)
		}
		return c, nil
	}
	cred := cfg.Credential
	if cred == nil {
		var err error
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err != nil {
			return nil, fmt.Errorf("cosmos: no %s and no Entra ID credential: %w", EnvKey, err)
		}
	}
	c, err := azcosmos.NewClient(cfg.Endpoint, cred, &o)
	if err != nil {
		return nil, fmt.Errorf("cosmos: %w", err)
	}
	return c, nil
}

// countRequests is a per-retry pipeline policy that counts HTTP requests:
// all of them into n (when set), and each call's attempts into the counter
// its context carries (withAttempts).
type countRequests struct{ n *atomic.Int64 }

// Do implements policy.Policy.
func (c countRequests) Do(req *policy.Request) (*http.Response, error) {
	if c.n != nil {
		c.n.Add(1)
	}
	if a, ok := req.Raw().Context().Value(attemptsKey{}).(*atomic.Int32); ok {
		a.Add(1)
	}
	return req.Next()
}

type attemptsKey struct{}

// withAttempts returns a context under which the SDK counts the attempts
// (first try and retries) of a call into the returned counter.
func withAttempts(ctx context.Context) (context.Context, *atomic.Int32) {
	n := new(atomic.Int32)
	return context.WithValue(ctx, attemptsKey{}, n), n
}

// CreateContainer creates cfg's database, if missing, and the lock
// container partitioned on /id (hash v2, so keys of up to 2 KiB are
// hashed whole). An existing container is left as it is but must be
// partitioned on /id. Throughput is the account's default (serverless,
// or the minimum provisioned).
func CreateContainer(ctx context.Context, cfg Config) error {
	client, err := NewClient(cfg, nil)
	if err != nil {
		return err
	}
	defer client.Close()
	if _, err := client.CreateDatabase(ctx, azcosmos.DatabaseProperties{ID: cfg.Database}, nil); err != nil && status(err) != http.StatusConflict {
		return fmt.Errorf("cosmos: create database %s: %w", cfg.Database, err)
	}
	db, err := client.NewDatabase(cfg.Database)
	if err != nil {
		return fmt.Errorf("cosmos: %w", err)
	}
	props := azcosmos.ContainerProperties{
		ID:                     cfg.Container,
		PartitionKeyDefinition: azcosmos.PartitionKeyDefinition{Kind: azcosmos.PartitionKeyKindHash, Paths: []string{"/id"}, Version: 2},
	}
	if _, err := db.CreateContainer(ctx, props, nil); err != nil && status(err) != http.StatusConflict {
		return fmt.Errorf("cosmos: create container %s/%s: %w", cfg.Database, cfg.Container, err)
	}
	c, err := db.NewContainer(cfg.Container)
	if err != nil {
		return fmt.Errorf("cosmos: %w", err)
	}
	resp, err := c.Read(ctx, nil)
	if err != nil {
		return fmt.Errorf("cosmos: read container %s/%s: %w", cfg.Database, cfg.Container, err)
	}
	if resp.ContainerProperties == nil {
		return fmt.Errorf("cosmos: container %s/%s: no properties in its read", cfg.Database, cfg.Container)
	}
	return checkPartitionKey(cfg.Container, resp.ContainerProperties.PartitionKeyDefinition)
}
