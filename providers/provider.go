// Package providers defines the contract between hasp's lock service and a
// storage backend, and the registry that opens a backend from a store URL.
//
// Each backend lives in its own sub-package (memory, etcd, ...) and runs the
// one conformance suite in providertest. Users never call a Provider
// directly: the service in package service validates requests, generates
// lease ids and implements waiting on top of it.
package providers

import (
	"context"

	"github.com/hasplock/hasp/lock"
)

// Provider stores leases in one backend. Every method must be safe for
// concurrent use, from any number of service instances sharing the
// backend, and must keep the semantics below. Requests arrive validated,
// with defaults applied (AcquireRequest.TTL is set; Wait is handled by the
// service and ignored here).
//
// Obligations (API v1, "Semantics every backend must keep"):
//
//  1. Mutual exclusion: at any instant of the service's clock at most one
//     unexpired lease holds a name.
//  2. Fencing: each successful Acquire of a name returns a FencingToken
//     strictly greater than every token issued before for that name, across
//     releases, expiries, restarts of the backend and any clean-up of idle
//     records, and below lock.MaxFencingToken. Renew keeps the token.
//  3. A lease ends at its ExpiresAt (by the service's clock), on Release,
//     or never earlier. ExpiresAt must be no later than the moment the
//     backend itself would let another acquirer in, and is measured from a
//     time taken before the write was sent. After a lease ends, Renew and
//     Release with its lease id fail with lock.ErrLeaseLost.
//  4. An operation whose outcome the provider cannot know (a timeout after
//     the write was sent) fails with an error wrapping lock.ErrUnavailable,
//     never success. A lease that such an Acquire may have created is never
//     handed out and simply expires at its TTL.
//
// Errors: a held lock is a *lock.HeldError (with the holder, a RetryAfter
// hint, and for watchers the Revision at which it was observed); a lost
// lease wraps lock.ErrLeaseLost; backend overload wraps lock.ErrThrottled
// and unreachability or timeouts wrap lock.ErrUnavailable (a
// *lock.RetryableError may carry a hint). Backend error text may be wrapped
// for logs; the HTTP layer never shows it to callers.
type Provider interface {
	// Name is the provider's short name, shown by /v1/health ("etcd").
	Name() string

	// Acquire grants req.Name to a new lease with id req.LeaseID, owner,
	// metadata and TTL from req, if the lock is free or its lease has
	// expired. Otherwise it returns a *lock.HeldError. It does not wait.
	Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error)

	// Renew extends the lease identified by req.LeaseID to now + TTL (the
	// lease's granted TTL when req.TTL is zero), keeping its token. If that
	// lease does not hold req.Name it returns an error wrapping
	// lock.ErrLeaseLost.
	Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error)

	// Release ends the lease identified by req.LeaseID. If that lease does
	// not hold req.Name it returns an error wrapping lock.ErrLeaseLost. The
	// next Acquire's token must still be greater than the released one.
	Release(ctx context.Context, req lock.ReleaseRequest) error

	// Status reports whether an unexpired lease holds name, and who.
	Status(ctx context.Context, name string) (lock.Status, error)

	// Ping checks that the backend answers.
	Ping(ctx context.Context) error

	// Close releases the provider's resources (connections, goroutines).
	// It does not release any lease.
	Close() error
}

// Watcher is an optional capability of a Provider that can be told of
// changes, so that waiting acquires are handed the lock without polling.
type Watcher interface {
	// WaitChange blocks until the lock named in held may have become free:
	// the holder's record was deleted or replaced after held.Revision, or
	// held.Holder.ExpiresAt (or a later expiry learnt from a renew) has
	// passed. It returns nil then, or ctx's error. Spurious early returns
	// are allowed; the service simply tries again.
	WaitChange(ctx context.Context, held *lock.HeldError) error
}

// RequestCounter is an optional capability of a Provider that counts the
// requests it sends to its backend, for benchmarks (`hasp bench`).
type RequestCounter interface {
	// BackendRequests returns the number of backend requests sent so far.
	BackendRequests() int64
}

// Provisioner is an optional capability of a Provider that can create the
// backend resources it needs (a table, a container, a schema), for
// `hasp store init --store URL`. Provision must be idempotent: resources
// that already exist in the right shape are left as they are, and ones in a
// wrong shape are an error that says what is wrong.
type Provisioner interface {
	// Provision creates what is missing; ctx bounds the whole set-up.
	Provision(ctx context.Context) error
}

// Guarantor is an optional capability of a Provider whose guarantees
// depend on how its backend is set up (Redis with or without persistence,
// one server or a Redlock majority). GET /v1/health shows the label as
// "guarantee", so that an operator sees what the store really promises.
type Guarantor interface {
	// Guarantee says in a few words which guarantee the store gives, such
	// as "best effort" or "durable: AOF appendfsync everysec".
	Guarantee() string
}

// Unwrapper is implemented by a Provider that wraps another (for metrics
// or tracing), so that optional capabilities of the wrapped one can still
// be found (see GuaranteeOf).
type Unwrapper interface {
	// Unwrap returns the wrapped provider.
	Unwrap() Provider
}

// GuaranteeOf returns p's Guarantee, looking through wrappers, or "" when
// p does not state one.
func GuaranteeOf(p Provider) string {
	for p != nil {
		if g, ok := p.(Guarantor); ok {
			return g.Guarantee()
		}
		u, ok := p.(Unwrapper)
		if !ok {
			return ""
		}
		p = u.Unwrap()
	}
	return ""
}
