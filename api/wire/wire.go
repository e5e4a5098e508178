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
	// Permits (1 to 1000) makes the name a semaphore; absent means 1.
	Permits int `json:"permits,omitempty"`
	// LockDelayMs (0 to 60000) keeps the name, or the lease's permit,
	// unavailable that long after the lease expires without a release.
	LockDelayMs int64 `json:"lock_delay_ms,omitempty"`
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
	// Permits is present for a permit of a semaphore (more than 1).
	Permits int `json:"permits,omitempty"`
	// LockDelayMs is present when the lease asked for a lock-delay.
	LockDelayMs int64 `json:"lock_delay_ms,omitempty"`
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
	// The fields below are present only for a semaphore, or a mutex whose
	// leases asked for a lock-delay: the permit count, how many permits
	// live leases hold, each live holder in token order, and the holders
	// whose lease expired without a release and whose lock-delay still
	// runs. The holder fields above are then the newest live holder's.
	Permits   int            `json:"permits,omitempty"`
	HeldCount *int           `json:"held_count,omitempty"`
	Holders   []PermitHolder `json:"holders,omitempty"`
	Delayed   []PermitHolder `json:"delayed,omitempty"`
}

// PermitHolder is one holder in a semaphore's status (never a lease id).
type PermitHolder struct {
	Owner        string `json:"owner"`
	FencingToken int64  `json:"fencing_token"`
	ExpiresAt    string `json:"expires_at"`
	Metadata     string `json:"metadata,omitempty"`
	// LockDelayMs and AvailableAt (expires_at plus the lock-delay) are
	// present when the lease asked for a lock-delay.
	LockDelayMs int64  `json:"lock_delay_ms,omitempty"`
	AvailableAt string `json:"available_at,omitempty"`
}

// HealthResponse is the body of GET /v1/health.
type HealthResponse struct {
	Status   string `json:"status"`
	Provider string `json:"provider"`
	// Guarantee is present when the provider states a caveat on API v1's
	// semantics (see providers.Guarantor), e.g. "exclusive-stale-reads".
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
	// Permits is present for a semaphore (or a lock-delayed mutex): the
	// holder is then the one whose permit frees first.
	Permits int `json:"permits,omitempty"`
	// DelayedUntil is present when that permit's lease expired without a
	// release and its lock-delay runs until then.
	DelayedUntil string `json:"delayed_until,omitempty"`
}

// PermitsMismatchResponse is the body of a 409 permits_mismatch response:
// the acquire asked for a permit count other than the one the name's
// holders agreed on (Permits; a mutex is 1). Nothing changed.
type PermitsMismatchResponse struct {
	Error   ErrorBody `json:"error"`
	Permits int       `json:"permits"`
}

// FromLease returns the response body for a lease.
func FromLease(l lock.Lease) LeaseResponse {
	r := LeaseResponse{
		Name: l.Name, Owner: l.Owner, LeaseID: l.LeaseID, FencingToken: l.FencingToken,
		TTLMs: l.TTL.Milliseconds(), ExpiresAt: lock.FormatTime(l.ExpiresAt), Metadata: l.Metadata,
		LockDelayMs: l.LockDelay.Milliseconds(),
	}
	if l.Permits > 1 {
		r.Permits = l.Permits
	}
	return r
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
		Permits: max(r.Permits, 1), LockDelay: time.Duration(r.LockDelayMs) * time.Millisecond,
	}, nil
}

// WatchResponse is the body of GET /v1/locks/watch: the lock's status when
// the watch answered, and whether its holder differs from the one named by
// after_token.
type WatchResponse struct {
	StatusResponse
	Changed bool `json:"changed"`
}

// ListResponse is the body of GET /v1/locks?prefix=P: one page of the held
// locks (each a held status, never with a lease id) and, when there may be
// more, the page token of the next page.
type ListResponse struct {
	Locks         []StatusResponse `json:"locks"`
	NextPageToken string           `json:"next_page_token,omitempty"`
}

// FromStatus returns the status body for st.
func FromStatus(st lock.Status) StatusResponse {
	resp := StatusResponse{Name: st.Name, Held: st.Held}
	if st.Held {
		tok := st.Holder.FencingToken
		owner := st.Holder.Owner
		resp.Owner, resp.FencingToken, resp.ExpiresAt, resp.Metadata = &owner, &tok, lock.FormatTime(st.Holder.ExpiresAt), st.Holder.Metadata
	}
	if st.Semaphore() {
		n := len(st.Holders)
		resp.Permits, resp.HeldCount = st.Permits, &n
		resp.Holders, resp.Delayed = permitHolders(st.Holders), permitHolders(st.Delayed)
	}
	return resp
}

func permitHolders(hs []lock.Holder) []PermitHolder {
	var out []PermitHolder
	for _, h := range hs {
		p := PermitHolder{Owner: h.Owner, FencingToken: h.FencingToken, ExpiresAt: lock.FormatTime(h.ExpiresAt), Metadata: h.Metadata}
		if h.LockDelay > 0 {
			p.LockDelayMs, p.AvailableAt = h.LockDelay.Milliseconds(), lock.FormatTime(h.FreeAt())
		}
		out = append(out, p)
	}
	return out
}

func (p PermitHolder) holder() (lock.Holder, error) {
	exp, err := lock.ParseTime(p.ExpiresAt)
	if err != nil {
		return lock.Holder{}, err
	}
	return lock.Holder{Owner: p.Owner, FencingToken: p.FencingToken, ExpiresAt: exp, Metadata: p.Metadata, LockDelay: time.Duration(p.LockDelayMs) * time.Millisecond}, nil
}

// Status converts a status body back to a status.
func (r StatusResponse) Status() (lock.Status, error) {
	st := lock.Status{Name: r.Name, Held: r.Held, Permits: r.Permits}
	for _, p := range r.Holders {
		h, err := p.holder()
		if err != nil {
			return lock.Status{}, err
		}
		st.Holders = append(st.Holders, h)
	}
	for _, p := range r.Delayed {
		h, err := p.holder()
		if err != nil {
			return lock.Status{}, err
		}
		st.Delayed = append(st.Delayed, h)
	}
	if !r.Held {
		return st, nil
	}
	exp, err := lock.ParseTime(r.ExpiresAt)
	if err != nil {
		return lock.Status{}, err
	}
	st.Holder = lock.Holder{ExpiresAt: exp, Metadata: r.Metadata}
	if r.Owner != nil {
		st.Holder.Owner = *r.Owner
	}
	if r.FencingToken != nil {
		st.Holder.FencingToken = *r.FencingToken
	}
	return st, nil
}
