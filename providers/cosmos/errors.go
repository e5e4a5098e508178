package cosmos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/hasplock/hasp/lock"
)

// defaultRetryAfter is the retry hint when Cosmos DB gives none.
const defaultRetryAfter = time.Second

// status returns the HTTP status of a Cosmos DB error response, or 0.
func status(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// docStatus returns the HTTP status of a Cosmos DB error response about a
// document, or 0; a 404 that says the container or database is missing (substatus 1003,
// "owner resource does not exist") is not a missing document, and counts
// as 0, so that callers treat it as the internal error it is.
func docStatus(err error) int {
	var re *azcore.ResponseError
	if s := status(err); s != http.StatusNotFound || !errors.As(err, &re) || re.RawResponse == nil ||
		re.RawResponse.Header.Get("x-ms-substatus") != "1003" {
		return s
	}
	return 0
}

// retryAfter reads Cosmos DB's retry hint from a response:
// x-ms-retry-after-ms, else Retry-After in seconds, else def.
func retryAfter(resp *http.Response, def time.Duration) time.Duration {
	if resp == nil {
		return def
	}
	if ms, err := strconv.ParseInt(resp.Header.Get("x-ms-retry-after-ms"), 10, 64); err == nil && ms >= 0 {
		return time.Duration(ms) * time.Millisecond
	}
	if s, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return def
}

// mapErr maps an error from Cosmos DB, or from the way to it, that the
// operations did not handle themselves (they handle 404, 409 and 412) to
// the lock package's sentinels:
//
//   - 429: lock.ErrThrottled, hinting x-ms-retry-after-ms;
//   - 408, 449 (retry with), 5xx, timeouts, cancellations and network errors:
//     lock.ErrUnavailable (a write may have been applied);
//   - 412 (a write's condition failed and nothing handled it):
//     lock.ErrLeaseLost;
//   - anything else (400, 401, 403, a missing container): an internal
//     error that wraps the original.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch s := re.StatusCode; {
		case s == http.StatusTooManyRequests:
			return lock.Throttled(fmt.Errorf("cosmos: %w", err), retryAfter(re.RawResponse, defaultRetryAfter))
		case s == http.StatusRequestTimeout || s == 449 || s >= 500:
			// 449 is Cosmos DB's "retry with": a transient write conflict.
			return lock.Unavailable(fmt.Errorf("cosmos: %w", err), retryAfter(re.RawResponse, defaultRetryAfter))
		case s == http.StatusPreconditionFailed:
			return fmt.Errorf("%w: cosmos: %w", lock.ErrLeaseLost, err)
		case s == http.StatusRequestEntityTooLarge:
			// The document would pass the 2 MB item limit: the same write
			// would be refused again.
			return fmt.Errorf("%w: cosmos: %w", lock.ErrRecordTooLarge, err)
		}
		return fmt.Errorf("cosmos: %w", err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isBrokenConnection(err) {
		// The request may have been applied: the outcome is unknown.
		return lock.Unavailable(fmt.Errorf("cosmos: %w", err), defaultRetryAfter)
	}
	return fmt.Errorf("cosmos: %w", err)
}

// isBrokenConnection reports a connection that failed mid-exchange.
func isBrokenConnection(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
