// Package client is the Go SDK for hasp: acquire a lock over HTTP, keep it
// with background renewals, and learn at once when it is lost, or about to
// be.
//
// It is thin on purpose: it imports the standard library, hasp's lock and
// wire packages, and only the aws-sdk-go-v2 core (for SigV4 and jittered
// backoff) — none of the server's backends.
//
// # Leases and loss
//
// Acquire returns a *Lease that renews itself every TTL/3 until Release. Its
// Context is cancelled, and Done closed, when the lease is lost (a renew
// answered lease_lost) or about to be: the client counts the lease's
// expiry from the moment it sent the acquire or renew, minus a safety
// margin, so that a caller stops before any other holder can be granted the
// lock, even if the network or the service is down. Run the protected work
// under Lease.Context, or use Client.Do.
//
// It is NOT safe to assume that the lock is held until Release: a process
// can pause (GC, swap, a frozen VM) for longer than the TTL without knowing.
// That is what fencing tokens are for.
//
// # Fencing
//
// Every acquire of a name gets a fencing token strictly greater than every
// token issued before for that name. Send the token with every write to the
// resource the lock protects, and have the resource refuse stale tokens:
//
//	-- the protected resource keeps the highest token it has accepted
//	UPDATE reports SET body = $1, fence = $2 WHERE id = $3 AND fence < $2
//
// A holder that paused past its expiry then fails its write instead of
// overwriting the work of the holder that came after it.
//
// # Elections
//
// Campaign waits until the caller leads an election (a lock name), with a
// value (the lease's metadata) that others see; the returned *Leadership
// ends its Context before the lease can end, as a Lease does, and Resign
// gives it up. Observe reports the current leader and every change on a
// channel, from long polls of GET /v1/locks/watch. Watch and List are the
// raw calls of the watch and listing endpoints.
//
// # Errors
//
// Errors match the lock package's sentinels with errors.Is, exactly as on
// the server: lock.ErrHeld (the error is a *lock.HeldError with the
// holder), lock.ErrLeaseLost, lock.ErrInvalidArgument, lock.ErrUnavailable,
// lock.ErrThrottled and lock.ErrUnauthenticated. Other HTTP failures are an
// *Error with the status and the body's code and message.
package client
