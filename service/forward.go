package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hasplock/hasp/lock"
)

// WithPingCache lets Ping answer from a success less than d old instead of
// asking the backend again: for front ends whose health route is open to
// anyone (the Lambda's /v1/health runs DescribeTable). Failures are never
// remembered.
func WithPingCache(d time.Duration) Option { return func(s *Service) { s.pingFor = d } }

// pingCached reports whether a recent success answers Ping.
func (s *Service) pingCached() bool {
	if s.pingFor <= 0 {
		return false
	}
	s.pingMu.Lock()
	defer s.pingMu.Unlock()
	return !s.pingOK.IsZero() && time.Since(s.pingOK) < s.pingFor
}

// call runs one provider operation under the operation timeout. A timeout
// of that bound, while the caller's ctx is still live, is reported as
// lock.ErrUnavailable: the outcome of the write is unknown.
func (s *Service) call(ctx context.Context, op func(context.Context) (lock.Lease, error)) (lock.Lease, error) {
	octx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	lease, err := op(octx)
	if err != nil && ctx.Err() == nil && octx.Err() != nil && !isLockError(err) {
		return lock.Lease{}, fmt.Errorf("%w: backend did not answer within %s: %w", lock.ErrUnavailable, s.opTimeout, err)
	}
	return lease, err
}

func isLockError(err error) bool {
	for _, target := range []error{lock.ErrHeld, lock.ErrLeaseLost, lock.ErrPermitsMismatch, lock.ErrRecordTooLarge, lock.ErrInvalidArgument, lock.ErrUnavailable, lock.ErrThrottled} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
