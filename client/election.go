package client

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/hasplock/hasp/lock"
)

// Leadership is a won election: a lease on the election's name whose
// metadata is the leader's value. Its methods are safe for concurrent use.
type Leadership struct {
	lease *Lease
	value string
}

// Campaign waits until this caller leads election (a lock name), with
// value as the leader's value (the lease's metadata, at most 1 KiB), or
// until ctx ends. It is Acquire with WithMetadata(value), waiting on the
// server and renewing in the background (opts may set the TTL, owner,
// renewal period and safety margin; a WithMetadata among them is
// overridden by value). The leadership's Context ends before the lease can
// end, as a Lease's does.
func (c *Client) Campaign(ctx context.Context, election, value string, opts ...AcquireOption) (*Leadership, error) {
	l, err := c.Acquire(ctx, election, append(opts, WithMetadata(value))...)
	if err != nil {
		return nil, err
	}
	return &Leadership{lease: l, value: value}, nil
}

// Context returns a context cancelled when leadership is lost, about to be
// (the lease's safety deadline), or resigned; context.Cause says which.
// Stop acting as leader when it is done.
func (l *Leadership) Context() context.Context { return l.lease.Context() }

// Done is closed when Context is cancelled.
func (l *Leadership) Done() <-chan struct{} { return l.lease.Done() }

// Err returns nil while leading, then why leadership ended.
func (l *Leadership) Err() error { return l.lease.Err() }

// Token returns the leadership's fencing token: send it with every write
// made as leader.
func (l *Leadership) Token() int64 { return l.lease.Token() }

// Value returns the leader's value.
func (l *Leadership) Value() string { return l.value }

// Lease returns the lease behind the leadership.
func (l *Leadership) Lease() *Lease { return l.lease }

// Resign gives leadership up: it releases the lease (retrying on
// unavailability until ctx ends), so that another candidate can win at
// once. It returns an error wrapping lock.ErrLeaseLost if leadership had
// already been lost.
func (l *Leadership) Resign(ctx context.Context) error { return l.lease.Release(ctx) }

// LeaderChange is one change of an election's leader, as Observe reports
// it.
type LeaderChange struct {
	// Held reports whether someone leads; when false the other fields are
	// zero.
	Held bool
	// Value is the leader's value (its lease's metadata).
	Value string
	// Token is the leader's fencing token; tokens of successive leaders
	// increase.
	Token int64
	// Owner is the leader's owner label.
	Owner string
	// ExpiresAt is when the leader's lease ends unless renewed, as last
	// reported.
	ExpiresAt time.Time
}

// ObserveBuffer is the capacity of the channel Observe returns.
const ObserveBuffer = 16

// Observe reports the leaders of election: first the current state (a
// leader, or Held false when nobody leads), then each change (a new
// leader, or nobody after a resignation or an expiry), on the returned
// channel, which is closed when ctx ends. It long-polls the watch endpoint
// (at most MaxServerWait per request) from the last token seen, so a
// change is reported as soon as the service sees it; changes that come and
// go faster than that may be merged into the latest. Throttling and
// unavailability are retried with jittered backoff (honouring
// Retry-After); other errors (an invalid name, wrong credentials) are
// retried at most every 5 s, since Observe has no way to return them. A
// reader that falls behind holds the loop back (the channel has
// ObserveBuffer places); it never misses the latest state.
func (c *Client) Observe(ctx context.Context, election string) <-chan LeaderChange {
	out := make(chan LeaderChange, ObserveBuffer)
	go func() {
		defer close(out)
		backoff := retry.NewExponentialJitterBackoff(5 * time.Second)
		var (
			after    int64
			failures int
			first    = true
		)
		for ctx.Err() == nil {
			wait := MaxServerWait
			if first {
				wait = 0
			}
			rctx, cancel := context.WithTimeout(ctx, wait+requestSlack)
			st, changed, err := c.Watch(rctx, election, after, wait)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				d, _ := backoff.BackoffDelay(failures, err)
				failures++
				if retryable(err) {
					d = max(d, lock.RetryAfter(err))
				} else {
					d = 5 * time.Second
				}
				if sleep(ctx, d) != nil {
					return
				}
				continue
			}
			failures = 0
			if !changed && !first {
				continue
			}
			first = false
			ch := LeaderChange{Held: st.Held}
			if st.Held {
				ch.Value, ch.Token, ch.Owner, ch.ExpiresAt = st.Holder.Metadata, st.Holder.FencingToken, st.Holder.Owner, st.Holder.ExpiresAt
			}
			after = ch.Token
			select {
			case out <- ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
