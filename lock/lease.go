package lock

import (
	"time"
)

// Limits and defaults of HTTP API v1. Every front end and every provider
// enforces the same numbers.
const (
	// DefaultTTL is the lease time-to-live when a request gives none.
	DefaultTTL = 30 * time.Second
	// MinTTL is the shortest lease a caller may ask for.
	MinTTL = time.Second
	// MaxTTL is the longest lease a caller may ask for.
	MaxTTL = time.Hour
	// MaxWait is the longest server-side wait, kept under API Gateway's
	// 29-second integration limit.
	MaxWait = 20 * time.Second
	// MaxNameLen is the longest lock name, in bytes.
	MaxNameLen = 255
	// MaxOwnerLen is the longest owner label, in bytes.
	MaxOwnerLen = 255
	// MaxMetadataLen is the largest metadata value, in bytes.
	MaxMetadataLen = 1024
	// MaxLeaseIDLen is the longest lease id a request may carry, in bytes.
	MaxLeaseIDLen = 128
	// MaxFencingToken is the bound every token stays below (2^53), so that
	// tokens survive a round trip through any JSON parser.
	MaxFencingToken = int64(1) << 53
	// DefaultListLimit is how many locks one page of a listing holds when
	// the request gives no limit.
	DefaultListLimit = 100
	// MaxListLimit is the largest page of a listing a caller may ask for.
	MaxListLimit = 1000
	// MaxPermits is the largest permit count of a semaphore.
	MaxPermits = 1000
	// MaxLockDelay is the longest lock-delay a lease may ask for.
	MaxLockDelay = time.Minute
)

// Lease is a granted lock: what acquire and renew return to the holder.
type Lease struct {
	// Name is the lock's name.
	Name string
	// Owner is the caller's label for itself; empty when none was given.
	Owner string
	// LeaseID is the secret that proves ownership to renew and release.
	// It is returned only to the acquirer and never logged.
	LeaseID string
	// FencingToken is strictly greater than every token issued before for
	// this name; renew keeps it.
	FencingToken int64
	// TTL is the time-to-live the backend granted (it may round up).
	TTL time.Duration
	// ExpiresAt is when the lease ends unless renewed, by the service's
	// clock, truncated to the millisecond.
	ExpiresAt time.Time
	// Metadata is the caller's opaque value stored with the lease.
	Metadata string
	// Permits is the permit count of the semaphore the lease holds one
	// permit of; 1 (or 0, from a provider) for a mutex.
	Permits int
	// LockDelay is how long the name (or the lease's permit) stays
	// unavailable after the lease expires without a release; zero for none.
	LockDelay time.Duration
}

// Holder describes the current holder of a lock, as shown to others: it
// never carries the holder's lease id.
type Holder struct {
	// Owner is the holder's label; empty when none was given.
	Owner string
	// FencingToken is the holder's token.
	FencingToken int64
	// ExpiresAt is when the holder's lease ends unless renewed.
	ExpiresAt time.Time
	// Metadata is the holder's metadata.
	Metadata string
	// LockDelay is the lease's lock-delay; zero for none.
	LockDelay time.Duration
}

// FreeAt is when the holder's permit can be granted again if its lease
// expires without a release: ExpiresAt plus LockDelay.
func (h Holder) FreeAt() time.Time { return h.ExpiresAt.Add(h.LockDelay) }

// Status is the state of one lock, as GET /v1/locks reports it.
type Status struct {
	// Name is the lock's name.
	Name string
	// Held reports whether an unexpired lease holds the lock.
	Held bool
	// Holder describes the holder when Held is true; zero otherwise. On a
	// semaphore it is the live holder granted last (the highest token).
	Holder Holder
	// Permits is the name's permit count when it is a semaphore, or a
	// mutex whose leases asked for a lock-delay; 0 for a plain mutex.
	Permits int
	// Holders lists every live holder of a semaphore (Permits > 0), in
	// token order; nil for a plain mutex.
	Holders []Holder
	// Delayed lists the holders whose leases expired without a release and
	// whose lock-delay has not yet run out: each keeps its permit (the
	// name, for a mutex) unavailable until its FreeAt.
	Delayed []Holder
}

// Semaphore reports whether the status is a semaphore's or a lock-delayed
// mutex's (the fields Permits, Holders and Delayed are set).
func (s Status) Semaphore() bool { return s.Permits > 0 }

// AcquireRequest asks for a lease.
type AcquireRequest struct {
	// Name is the lock to take (required).
	Name string
	// Owner is an optional label for the caller.
	Owner string
	// TTL is the lease's time-to-live; zero means DefaultTTL.
	TTL time.Duration
	// Wait is how long the service may wait for a held lock; zero answers
	// at once.
	Wait time.Duration
	// Metadata is stored with the lease and shown by status.
	Metadata string
	// LeaseID is set by the service before it calls a provider: a fresh,
	// unguessable secret for the new lease. Callers leave it empty.
	LeaseID string
	// Permits makes the name a semaphore of that many permits (1 to
	// MaxPermits); zero means 1, a mutex. Every live holder of a name must
	// agree on it (lock.ErrPermitsMismatch otherwise).
	Permits int
	// LockDelay (0 to MaxLockDelay, whole milliseconds) keeps the name, or
	// this lease's permit, unavailable for that long after the lease
	// expires without a release; zero for none.
	LockDelay time.Duration
}

// RenewRequest asks to extend a lease.
type RenewRequest struct {
	// Name is the lock's name (required).
	Name string
	// LeaseID is the secret returned by acquire (required).
	LeaseID string
	// TTL is the new time-to-live from now; zero keeps the lease's granted
	// TTL.
	TTL time.Duration
}

// ReleaseRequest asks to end a lease.
type ReleaseRequest struct {
	// Name is the lock's name (required).
	Name string
	// LeaseID is the secret returned by acquire (required).
	LeaseID string
}

// ExpiresAt returns when a lease of the given ttl that started at start
// ends, truncated to the millisecond (the precision of the API), in UTC.
// Truncation only moves the reported end earlier, never later.
func ExpiresAt(start time.Time, ttl time.Duration) time.Time {
	return start.Add(ttl).UTC().Truncate(time.Millisecond)
}

// TimeFormat is the layout of every timestamp in API v1: RFC 3339, UTC,
// exactly three fractional digits.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime formats t as API v1 does.
func FormatTime(t time.Time) string {
	return t.UTC().Format(TimeFormat)
}

// ParseTime parses a timestamp written by FormatTime.
func ParseTime(s string) (time.Time, error) {
	return time.Parse(TimeFormat, s)
}

// Clock tells the time. Providers that judge expiry by the service's clock
// take one, so tests can control it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
}

// SystemClock is the machine's clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
