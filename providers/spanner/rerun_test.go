package spanner_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/spanner"
	"github.com/hasplock/hasp/service"
)

// abortAppliedCommit lets the first Commit it sees after being armed
// through to Spanner (it is applied), runs between (other clients at
// work), then answers Aborted, so that the client library runs the
// transaction again.
type abortAppliedCommit struct {
	armed, done atomic.Bool
	between     func()
}

func (a *abortAppliedCommit) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method != "/google.spanner.v1.Spanner/Commit" || !a.armed.Load() || a.done.Swap(true) {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
		return err
	}
	a.between()
	return status.Error(codes.Aborted, "test: the commit was applied, its answer is replaced")
}

// TestReleaseRunAgainAfterApplied: the library runs a release again after
// its commit was applied, while another instance takes the freed lock (or
// not). A run that finds the lock taken while the released lease was still
// live knows the release went through; one that finds it taken after the
// lease's expiry cannot know: unavailable, never a false lease_lost.
func TestReleaseRunAgainAfterApplied(t *testing.T) {
	e := launch.Spanner(t)
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		wait time.Duration // between the applied commit and the other acquire
		take bool
		want error // nil: released
	}{
		{"nobody in between", 5 * time.Second, 0, false, nil},
		{"taken while the lease was live", 5 * time.Second, 0, true, nil},
		{"taken after the lease's expiry", time.Second, 1100 * time.Millisecond, true, lock.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := database(t, e)
			other := open(t, e, db)
			defer other.Close()
			others := service.New(other)
			ctx := context.Background()
			var next lock.Lease
			ab := &abortAppliedCommit{between: func() {
				time.Sleep(tc.wait)
				if tc.take {
					var err error
					next, err = others.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
					require.NoError(t, err, "the release was applied: the lock is free")
				}
			}}
			p := open(t, e, db, spanner.WithClientOptions(option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(ab.intercept))))
			defer p.Close()
			s := service.New(p)
			l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", TTL: tc.ttl})
			require.NoError(t, err)
			ab.armed.Store(true)
			err = s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID})
			require.True(t, ab.done.Load(), "the release's commit was applied and answered Aborted")
			if tc.want == nil {
				require.NoError(t, err, "the release went through")
			} else {
				require.ErrorIs(t, err, tc.want)
				require.NotErrorIs(t, err, lock.ErrLeaseLost, "never a false lease_lost")
			}
			st, err := s.Status(ctx, "n")
			require.NoError(t, err)
			assert.Equal(t, tc.take, st.Held)
			if tc.take {
				assert.Equal(t, next.FencingToken, st.Holder.FencingToken, "the new holder keeps the lock")
			}
			require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}), lock.ErrLeaseLost, "a second release is lost")
		})
	}
}
