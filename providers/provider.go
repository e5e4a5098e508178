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
	"errors"

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

// Guarantor is an optional capability of a Provider whose store keeps API
// v1's semantics only in part, or only with a caveat users must know;
// /v1/health reports it as "guarantee". A Provider that does not implement
// it, or answers "", states no such caveat.
type Guarantor interface {
	// Guarantee names what the store keeps: one of the Guarantee*
	// constants, or "".
	Guarantee() string
}

// GuaranteeStaleReads means: mutual exclusion and fencing hold (API v1
// semantics 1 to 4), but status and lock_held answers come from reads that
// may be stale, so they may still show a holder that has just released, or
// not yet show one that has just acquired. Acquire, renew and release
// answers are not affected.
const GuaranteeStaleReads = "exclusive-stale-reads"

// GuaranteeOf returns the Guarantee of p, or of a provider it wraps, or
// "" when none states one.
func GuaranteeOf(p Provider) string {
	if g, ok := As[Guarantor](p); ok {
		return g.Guarantee()
	}
	return ""
}

// HolderWatcher is an optional capability of a Provider that can be told
// when the holder of a name changes, so that GET /v1/locks/watch answers
// without polling. Providers without it are polled by the service (see
// service.WithWatchPoll).
type HolderWatcher interface {
	// WaitHolderChange blocks until the holder of name may differ from the
	// holder with fencing token token (0: no holder): a new lease was
	// granted, the lease was released or taken over, or its expiry (as
	// last renewed) passed by the provider's clock. It returns nil then,
	// or ctx's error. It must not miss a change made after the caller read
	// the status from which token came: if the holder differs already when
	// it starts, it returns nil at once. Spurious early returns are
	// allowed; the service reads the status again and waits again.
	WaitHolderChange(ctx context.Context, name string, token int64) error
}

// Lister is an optional capability of a Provider that can list the names
// held under a prefix, for GET /v1/locks?prefix=P. Every provider of this
// module implements it; its cost per backend is documented on each
// provider's List and in the README.
type Lister interface {
	// List returns the statuses of locks whose name starts with prefix
	// ("" lists all) and that an unexpired lease holds by the provider's
	// clock, at most limit (1 ≤ limit ≤ lock.MaxListLimit) of them, and a
	// continuation: "" when the listing is complete, else an opaque
	// provider token to pass as after for the next page. after is "" for
	// the first page; a malformed one is a *lock.InvalidArgumentError for
	// field "page_token". A page may hold fewer than limit items (even
	// none) and still have a continuation, for providers that bound the
	// work of one call. Items are in byte order of name when the provider
	// can (memory, etcd, Spanner, Cosmos DB, ZooKeeper); a name is listed
	// at most once across the pages of one listing if it stays held.
	// Statuses never carry a lease id.
	List(ctx context.Context, prefix string, limit int, after string) (items []lock.Status, next string, err error)
}

// ErrUnsupported means a provider lacks an optional capability. A wrapper
// that offers a capability's method whatever the provider it wraps can do
// (telemetry's instrumented provider) returns an error wrapping it.
var ErrUnsupported = errors.New("providers: not supported by this store")

// Wrapper is a Provider that wraps another one (telemetry's instrumented
// provider): As looks through it for optional capabilities.
type Wrapper interface {
	// Unwrap returns the wrapped provider.
	Unwrap() Provider
}

// As returns p as the optional capability T (HolderWatcher, Lister, ...),
// looking through Wrappers, and whether p or a provider it wraps has it.
func As[T any](p Provider) (T, bool) {
	for p != nil {
		if t, ok := p.(T); ok {
			return t, true
		}
		w, ok := p.(Wrapper)
		if !ok {
			break
		}
		p = w.Unwrap()
	}
	var zero T
	return zero, false
}
