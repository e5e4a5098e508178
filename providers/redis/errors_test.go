package redis

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"

	"github.com/hasplock/hasp/lock"
)

// replyErr is an error reply from a Redis server, as go-redis returns it.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

var _ goredis.Error = replyErr("")

func TestMapErr(t *testing.T) {
	tests := []struct {
		err  error
		want error // nil: neither retryable sentinel
	}{
		{replyErr("BUSY Redis is busy running a script."), lock.ErrThrottled},
		{replyErr("TRYAGAIN Multiple keys request during rehashing of slot"), lock.ErrThrottled},
		{replyErr("ERR max number of clients reached"), lock.ErrThrottled},
		{replyErr("LOADING Redis is loading the dataset in memory"), lock.ErrUnavailable},
		{replyErr("OOM command not allowed when used memory > 'maxmemory'."), lock.ErrUnavailable},
		{replyErr("READONLY You can't write against a read only replica."), lock.ErrUnavailable},
		{replyErr("MASTERDOWN Link with MASTER is down"), lock.ErrUnavailable},
		{replyErr("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk."), lock.ErrUnavailable},
		{io.EOF, lock.ErrUnavailable}, // the connection closed under the answer: outcome unknown
		{io.ErrUnexpectedEOF, lock.ErrUnavailable},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, lock.ErrUnavailable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, lock.ErrUnavailable},
		{context.DeadlineExceeded, lock.ErrUnavailable},
		{goredis.ErrClosed, lock.ErrUnavailable},
		{goredis.ErrPoolTimeout, lock.ErrUnavailable},
		{replyErr("NOPERM this user has no permissions to run the 'evalsha' command"), nil},
		{replyErr("WRONGPASS invalid username-password pair or user is disabled."), nil},
		{replyErr("NOAUTH Authentication required."), nil},
		{replyErr("ERR unknown command 'EVALSHA'"), nil},
		{replyErr("ERR Error running script: HASP fencing token would reach 2^53"), nil},
	}
	for _, tt := range tests {
		got := mapErr("127.0.0.1:6379", tt.err)
		if tt.want == nil {
			assert.False(t, errors.Is(got, lock.ErrUnavailable) || errors.Is(got, lock.ErrThrottled), "%v: misconfiguration must not look retryable: %v", tt.err, got)
			assert.Error(t, got, "never a success")
			continue
		}
		assert.ErrorIs(t, got, tt.want, "%v", tt.err)
		assert.ErrorIs(t, got, tt.err, "the cause is kept for logs")
	}
	assert.NoError(t, mapErr("x", nil))
}
