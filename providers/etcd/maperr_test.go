package etcd

import (
	"context"
	"errors"
	"io"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hasplock/hasp/lock"
)

func TestMapErr(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want error
	}{
		{io.EOF, lock.ErrUnavailable}, // a connection dropped mid-call: outcome unknown
		{status.Error(codes.Unknown, "EOF"), lock.ErrUnavailable},
		{status.Error(codes.Unavailable, "transport is closing"), lock.ErrUnavailable},
		{context.DeadlineExceeded, lock.ErrUnavailable},
		{rpctypes.ErrGRPCNoSpace, lock.ErrUnavailable},
		{rpctypes.ErrTooManyRequests, lock.ErrThrottled},
		{status.Error(codes.ResourceExhausted, "slow down"), lock.ErrThrottled},
	} {
		if got := mapErr(tt.err); !errors.Is(got, tt.want) {
			t.Errorf("mapErr(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	for _, err := range []error{
		rpctypes.ErrGRPCPermissionDenied,
		rpctypes.ErrGRPCInvalidAuthToken,
		status.Error(codes.InvalidArgument, "request is too large"),
	} {
		got := mapErr(err)
		if errors.Is(got, lock.ErrUnavailable) || errors.Is(got, lock.ErrThrottled) || got == nil {
			t.Errorf("mapErr(%v) = %v: misconfiguration must not look retryable", err, got)
		}
	}
	if mapErr(nil) != nil {
		t.Error("mapErr(nil) != nil")
	}
}
