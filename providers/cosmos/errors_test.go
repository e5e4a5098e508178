package cosmos

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/stretchr/testify/assert"

	"github.com/hasplock/hasp/lock"
)

// responseError is the error the SDK returns for a Cosmos DB answer.
func responseError(code int, header http.Header) error {
	if header == nil {
		header = http.Header{}
	}
	return runtime.NewResponseError(&http.Response{
		StatusCode: code, Status: http.StatusText(code), Header: header,
		Body:    io.NopCloser(strings.NewReader(`{"code":"x","message":"y"}`)),
		Request: httptest.NewRequest(http.MethodPut, "https://acct.documents.azure.com/dbs/d/colls/c/docs/x", nil),
	})
}

func TestMapErr(t *testing.T) {
	retry := func(ms string) http.Header { return http.Header{"X-Ms-Retry-After-Ms": {ms}} }
	tests := []struct {
		name   string
		err    error
		status int
		want   error // nil: an internal error (no sentinel)
		hint   time.Duration
	}{
		{"429 with x-ms-retry-after-ms", responseError(429, retry("1234")), 429, lock.ErrThrottled, 1234 * time.Millisecond},
		{"429 with Retry-After", responseError(429, http.Header{"Retry-After": {"2"}}), 429, lock.ErrThrottled, 2 * time.Second},
		{"429 without a hint", responseError(429, nil), 429, lock.ErrThrottled, time.Second},
		{"503 with a hint", responseError(503, retry("50")), 503, lock.ErrUnavailable, 50 * time.Millisecond},
		{"500", responseError(500, nil), 500, lock.ErrUnavailable, time.Second},
		{"502", responseError(502, nil), 502, lock.ErrUnavailable, time.Second},
		{"504", responseError(504, nil), 504, lock.ErrUnavailable, time.Second},
		{"408 request timeout", responseError(408, nil), 408, lock.ErrUnavailable, time.Second},
		{"412 (a failed condition)", responseError(412, nil), 412, lock.ErrLeaseLost, 0},
		{"409 (handled by acquire)", responseError(409, nil), 409, nil, 0},
		{"404 (a missing container)", responseError(404, nil), 404, nil, 0},
		{"401 (a wrong key)", responseError(401, nil), 401, nil, 0},
		{"403", responseError(403, nil), 403, nil, 0},
		{"400", responseError(400, nil), 400, nil, 0},
		{"413 (a document over 2 MB)", responseError(413, nil), 413, lock.ErrRecordTooLarge, 0},
		{"deadline", context.DeadlineExceeded, 0, lock.ErrUnavailable, time.Second},
		{"canceled", context.Canceled, 0, lock.ErrUnavailable, time.Second},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, 0, lock.ErrUnavailable, time.Second},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, 0, lock.ErrUnavailable, time.Second},
		{"unexpected EOF", io.ErrUnexpectedEOF, 0, lock.ErrUnavailable, time.Second},
		{"anything else", errors.New("boom"), 0, nil, 0},
	}
	sentinels := []error{lock.ErrThrottled, lock.ErrUnavailable, lock.ErrLeaseLost, lock.ErrHeld, lock.ErrRecordTooLarge}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.status, status(tt.err))
			got := mapErr(tt.err)
			assert.ErrorIs(t, got, tt.err, "the original error is kept for logs")
			for _, s := range sentinels {
				assert.Equal(t, s == tt.want, errors.Is(got, s), "errors.Is(%v, %v)", got, s)
			}
			assert.Equal(t, tt.hint, lock.RetryAfter(got))
		})
	}
	assert.NoError(t, mapErr(nil))
}

func TestDocStatus(t *testing.T) {
	assert.Equal(t, http.StatusNotFound, docStatus(responseError(http.StatusNotFound, nil)), "a missing document")
	assert.Equal(t, 0, docStatus(responseError(http.StatusNotFound, http.Header{"X-Ms-Substatus": {"1003"}})), "a missing container is not a missing document")
	assert.Equal(t, http.StatusPreconditionFailed, docStatus(responseError(http.StatusPreconditionFailed, nil)))
	assert.Equal(t, 0, docStatus(errors.New("not a response")))
	assert.NotErrorIs(t, mapErr(responseError(http.StatusNotFound, http.Header{"X-Ms-Substatus": {"1003"}})), lock.ErrLeaseLost)
}
