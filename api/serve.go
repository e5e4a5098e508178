package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// NewServer returns an http.Server for h with the limits every front end
// that serves API v1 over its own listener uses (`hasp serve`, the Azure
// custom handler): header and body read timeouts, a write timeout above
// MaxWait plus a backend timeout, and 64 KiB of headers.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second, // > MaxWait plus a backend timeout
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Serve serves srv on ln until ctx ends, then shuts down gracefully: it
// stops accepting and lets requests in flight finish for up to grace.
// Requests still running after grace are cut off; that is not an error.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
