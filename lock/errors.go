package lock

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Every layer wraps them, so callers test with errors.Is:
// a provider's error, the service's, the HTTP handler's mapping and the
// client SDK's decoding of a response all match the same values.
var (
	// ErrHeld means another lease holds the lock. The error is a
	// *HeldError that carries the holder.
	ErrHeld = errors.New("lock: held by another lease")
	// ErrLeaseLost means the lease no longer holds the lock: it expired,
	// was released, or was taken over.
	ErrLeaseLost = errors.New("lock: lease lost")
	// ErrInvalidArgument means a request field breaks the rules of API v1.
	// The error is an *InvalidArgumentError that names the field.
	ErrInvalidArgument = errors.New("lock: invalid argument")
	// ErrUnavailable means the backend could not be reached, timed out, or
	// gave an answer whose outcome is unknown. It is safe to retry.
	ErrUnavailable = errors.New("lock: backend unavailable")
	// ErrThrottled means the backend refused the request for load. It is
	// safe to retry after a pause.
	ErrThrottled = errors.New("lock: backend throttled")
	// ErrUnauthenticated means credentials were required and missing or
	// wrong.
	ErrUnauthenticated = errors.New("lock: unauthenticated")
	// ErrPermitsMismatch means an acquire asked for a permit count other
	// than the one the name's holders agreed on (a mutex is 1). The error
	// is a *PermitsMismatchError.
	ErrPermitsMismatch = errors.New("lock: permits mismatch")
	// ErrRecordTooLarge means an acquire would make the name's record
	// larger than the store can hold in one item (DynamoDB's 400 KB,
	// Cosmos DB's 2 MB, a znode's 1 MB, etcd's request limit): a
	// semaphore whose holders' owners and metadata take too much room.
	// Nothing changed. Retrying does not help until holders leave.
	ErrRecordTooLarge = errors.New("lock: the lock's record would be too large for the store")
)

// PermitsMismatchError reports an acquire whose permit count disagrees
// with the name's live (or lock-delayed) holders. Nothing changed.
type PermitsMismatchError struct {
	// Name is the lock's name.
	Name string
	// Permits is the count the name's holders agreed on.
	Permits int
	// Requested is the count the acquire asked for.
	Requested int
}

// Error implements error.
func (e *PermitsMismatchError) Error() string {
	return fmt.Sprintf("lock: %q is held with %d permits, not %d", e.Name, e.Permits, e.Requested)
}

// Unwrap makes errors.Is(err, ErrPermitsMismatch) true.
func (e *PermitsMismatchError) Unwrap() error { return ErrPermitsMismatch }

// HeldError reports that another lease holds the lock.
type HeldError struct {
	// Name is the lock's name.
	Name string
	// Holder describes the current holder (never its lease id).
	Holder Holder
	// RetryAfter hints when to try again: the time until the holder's lease
	// expires, or less. Zero when unknown.
	RetryAfter time.Duration
	// Revision is a backend-specific version at which the holder was
	// observed, for providers that watch for changes; zero otherwise. It
	// never leaves the service.
	Revision int64
	// Permits is set when the name is a semaphore, or a mutex whose leases
	// asked for a lock-delay (see Status.Permits); 0 for a plain mutex.
	// Holder is then the holder whose permit frees first.
	Permits int
	// DelayedUntil is set when every permit is taken and the first to free
	// is held only by a lock-delay: the lease expired without a release,
	// and the permit is unavailable until then.
	DelayedUntil time.Time
}

// Error implements error.
func (e *HeldError) Error() string {
	return fmt.Sprintf("lock: %q is held (fencing token %d, owner %q, expires %s)",
		e.Name, e.Holder.FencingToken, e.Holder.Owner, FormatTime(e.Holder.ExpiresAt))
}

// Unwrap makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Unwrap() error { return ErrHeld }

// InvalidArgumentError reports a request that breaks the rules of API v1.
type InvalidArgumentError struct {
	// Field is the JSON name of the field at fault; empty when the request
	// as a whole is malformed.
	Field string
	// Message says what is wrong, in words fit for the caller.
	Message string
}

// Error implements error.
func (e *InvalidArgumentError) Error() string {
	if e.Field == "" {
		return "lock: invalid argument: " + e.Message
	}
	return "lock: invalid argument: " + e.Field + ": " + e.Message
}

// Unwrap makes errors.Is(err, ErrInvalidArgument) true.
func (e *InvalidArgumentError) Unwrap() error { return ErrInvalidArgument }

// Invalid returns an *InvalidArgumentError for field.
func Invalid(field, format string, args ...any) error {
	return &InvalidArgumentError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// RetryableError attaches a retry hint to ErrUnavailable or ErrThrottled.
type RetryableError struct {
	// Err is ErrUnavailable or ErrThrottled, possibly wrapped.
	Err error
	// RetryAfter is how long to wait before trying again; zero when unknown.
	RetryAfter time.Duration
}

// Error implements error.
func (e *RetryableError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *RetryableError) Unwrap() error { return e.Err }

// Unavailable reports that the backend could not be reached or did not
// answer (err says why), and when to try again: a *RetryableError wrapping
// ErrUnavailable and err.
func Unavailable(err error, after time.Duration) error {
	return &RetryableError{Err: fmt.Errorf("%w: %w", ErrUnavailable, err), RetryAfter: after}
}

// Throttled reports that the backend refused the request for load (err
// says how), and when to try again: a *RetryableError wrapping
// ErrThrottled and err.
func Throttled(err error, after time.Duration) error {
	return &RetryableError{Err: fmt.Errorf("%w: %w", ErrThrottled, err), RetryAfter: after}
}

// RetryAfter returns the retry hint carried by err, or zero.
func RetryAfter(err error) time.Duration {
	var h *HeldError
	if errors.As(err, &h) {
		return h.RetryAfter
	}
	var r *RetryableError
	if errors.As(err, &r) {
		return r.RetryAfter
	}
	return 0
}
