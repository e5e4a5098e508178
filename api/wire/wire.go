// Package wire holds the JSON bodies of HTTP API v1, shared by the server
// (package api) and the client SDK. It imports only the standard library
// and package lock.
package wire

import (
	"time"

	"github.com/hasplock/hasp/lock"
)

// AcquireRequest is the body of POST /v1/locks/acquire.
type AcquireRequest struct {
	Name     string `json:"name"`
	Owner    string `json:"owner,omitempty"`
	TTLMs    int64  `json:"ttl_ms,omitempty"`
	WaitMs   int64  `json:"wait_ms,omitempty"`
	Metadata string `json:"metadata,omitempty"`
}

// RenewRequest is the body of POST /v1/locks/renew.
type RenewRequest struct {
	Name    string `json:"name"`
	LeaseID string `json:"lease_id"`
	TTLMs   int64  `json:"ttl_ms,omitempty"`
}

// ReleaseRequest is the body of POST /v1/locks/release.
type ReleaseRequest struct {
	Name    string `json:"name"`
	LeaseID string `json:"lease_id"`
}

// LeaseResponse is the body of a successful acquire or renew.
type LeaseResponse struct {
	Name         string `json:"name"`
	Owner        string `json:"owner"`
	LeaseID      string `json:"lease_id"`
	FencingToken int64  `json:"fencing_token"`
	TTLMs        int64  `json:"ttl_ms"`
	ExpiresAt    string `json:"expires_at"`
	Metadata     string `json:"metadata,omitempty"`
}

// ReleaseResponse is the body of a successful release.
type ReleaseResponse struct {
	Name     string `json:"name"`
	Released bool   `json:"released"`
}

// StatusResponse is the body of GET /v1/locks. Holder fields are present
// only when Held is true; it never carries a lease id.
type StatusResponse struct {
	Name         string  `json:"name"`
	Held         bool    `json:"held"`
	Owner        *string `json:"owner,omitempty"`
	FencingToken *int64  `json:"fencing_token,omitempty"`
	ExpiresAt    string  `json:"expires_at,omitempty"`
	Metadata     string  `json:"metadata,omitempty"`
}

// HealthResponse is the body of GET /v1/health.
type HealthResponse struct {
	Status   string `json:"status"`
	Provider string `json:"provider"`
	// Guarantee is the store's own label of what it promises ("best
	// effort" for Redis without persistence); absent when the provider
	// states none.
	Guarantee string `json:"guarantee,omitempty"`
}

// ErrorBody is the "error" member of every error response.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// ErrorResponse is the body of every error response but lock_held.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// HolderBody describes the holder in a lock_held response.
type HolderBody struct {
	Owner        string `json:"owner"`
	FencingToken int64  `json:"fencing_token"`
	ExpiresAt    string `json:"expires_at"`
}

// HeldResponse is the body of a 409 lock_held response.
type HeldResponse struct {
	Error        ErrorBody  `json:"error"`
	Holder       HolderBody `json:"holder"`
	RetryAfterMs int64      `json:"retry_after_ms"`
}

// FromLease returns the response body for a lease.
func FromLease(l lock.Lease) LeaseResponse {
	return LeaseResponse{
		Name: l.Name, Owner: l.Owner, LeaseID: l.LeaseID, FencingToken: l.FencingToken,
		TTLMs: l.TTL.Milliseconds(), ExpiresAt: lock.FormatTime(l.ExpiresAt), Metadata: l.Metadata,
	}
}

// Lease converts a response body back to a lease.
func (r LeaseResponse) Lease() (lock.Lease, error) {
	exp, err := lock.ParseTime(r.ExpiresAt)
	if err != nil {
		return lock.Lease{}, err
	}
	return lock.Lease{
		Name: r.Name, Owner: r.Owner, LeaseID: r.LeaseID, FencingToken: r.FencingToken,
		TTL: time.Duration(r.TTLMs) * time.Millisecond, ExpiresAt: exp, Metadata: r.Metadata,
	}, nil
}
