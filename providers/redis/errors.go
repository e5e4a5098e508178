package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hasplock/hasp/lock"
)

// ErrNotDurable means a Redis server does not keep every write it
// acknowledged across a restart: its append-only file is off, or fsynced
// only when the kernel likes (appendfsync no), or an allkeys-* eviction
// policy may drop lock records, or CONFIG GET is refused so that none of
// this can be checked. Open refuses such a server unless the store URL
// says durability=none.
var ErrNotDurable = errors.New("redis: server does not keep acknowledged writes")

// mapErr maps a go-redis error from the server at addr to the lock
// package's sentinels. A script that the server refused (busy, loading,
// out of memory, read-only) did not run; a broken connection or a timeout
// after the request was sent leaves the outcome unknown: both are
// retryable, never success. Misconfiguration (authentication, permissions,
// an unknown command) is an internal error.
func mapErr(addr string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("redis %s: %w", addr, err)
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		code, _, _ := strings.Cut(msg, " ")
		switch code {
		case "BUSY", "TRYAGAIN":
			// A script runs too long, or a cluster slot is moving: load
			// that passes.
			return lock.Throttled(wrapped, 100*time.Millisecond)
		case "LOADING", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "NOREPLICAS", "MISCONF", "OOM":
			// Not serving writes now (loading its data, a replica, a
			// failed disk, full memory): retrying soon will not help.
			return lock.Unavailable(wrapped, time.Second)
		case "ERR":
			if strings.Contains(msg, "max number of clients") {
				return lock.Throttled(wrapped, time.Second)
			}
		}
		return wrapped
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, goredis.ErrClosed) || errors.Is(err, goredis.ErrPoolTimeout) {
		// The script may have run: the outcome is unknown.
		return lock.Unavailable(wrapped, time.Second)
	}
	return wrapped
}
