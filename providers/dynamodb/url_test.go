package dynamodb_test

import (
	"context"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/dynamodb"
)

// TestOpenRetries: a provider opened from a store URL retries a failing
// request as DynamoDB's client does by default from v1.69.0 on (4
// attempts), although go.mod holds the client at v1.68.0 (3 by default);
// AWS_MAX_ATTEMPTS still wins.
func TestOpenRetries(t *testing.T) {
	tests := []struct {
		name        string
		maxAttempts string
		want        int64
	}{
		{"DynamoDB's default", "", 4},
		{"AWS_MAX_ATTEMPTS", "2", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				body := []byte(`{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"try again"}`)
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write(body)
			}))
			t.Cleanup(srv.Close)
			t.Setenv("AWS_REGION", "us-east-1")
			t.Setenv("AWS_ACCESS_KEY_ID", "test")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
			t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.URL)
			t.Setenv("AWS_MAX_ATTEMPTS", tt.maxAttempts)
			u, err := url.Parse("dynamodb://locks")
			require.NoError(t, err)
			p, err := dynamodb.Open(context.Background(), u)
			require.NoError(t, err)
			t.Cleanup(func() { _ = p.Close() })
			_, err = p.Status(context.Background(), "x")
			require.ErrorIs(t, err, lock.ErrUnavailable)
			assert.Equal(t, tt.want, attempts.Load(), "attempts of one request")
		})
	}
}
