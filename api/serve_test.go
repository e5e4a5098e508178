package api_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/service"
)

// TestServe: the server answers until its context ends, then lets a
// request in flight finish and returns nil.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	svc := service.New(memory.New())
	srv := api.NewServer(api.New(svc))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, srv, ln, 5*time.Second) }()
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + api.PathHealth)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// A held lock and a waiting acquire in flight when the context ends.
	resp, err = http.Post(base+api.PathAcquire, "application/json", strings.NewReader(`{"name":"serve"}`))
	require.NoError(t, err)
	resp.Body.Close()
	waiting := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+api.PathAcquire, "application/json", strings.NewReader(`{"name":"serve","wait_ms":300}`))
		if err != nil {
			waiting <- 0
			return
		}
		resp.Body.Close()
		waiting <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	assert.Equal(t, http.StatusConflict, <-waiting, "the request in flight was answered")
	require.NoError(t, <-done)
	_, err = http.Get(base + api.PathHealth)
	assert.Error(t, err, "no longer listening")
}
