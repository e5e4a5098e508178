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
		// Refused for its size, by etcd or by gRPC on either side: not
		// load, and not retryable.
		{rpctypes.ErrGRPCRequestTooLarge, lock.ErrRecordTooLarge},
		{status.Error(codes.ResourceExhausted, "trying to send message larger than max (7864424 vs. 2097152)"), lock.ErrRecordTooLarge},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max (2100000 vs. 2097152)"), lock.ErrRecordTooLarge},
	} {
		if got := mapErr(tt.err); !errors.Is(got, tt.want) {
			t.Errorf("mapErr(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	for _, err := range []error{
		rpctypes.ErrGRPCPermissionDenied,
		rpctypes.ErrGRPCInvalidAuthToken,
		rpctypes.ErrGRPCRequestTooLarge,
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
