package faults

import (
	"io"
	"net"
	"net/http"
	"syscall"
)

// Transport is an http.RoundTripper that injects the faults of its plan
// into each request a client sends, for backends whose SDK must not be put
// behind a proxy: the Cosmos DB SDK, for one, sends its requests to the
// endpoints the account advertises, not to the one it was given, so a
// proxy in front of the first request is bypassed by the rest. A reset
// fails the request before it is sent; a dropped response lets the request
// reach the backend, then discards the answer and fails as a reset
// connection would, so the caller cannot know the outcome.
type Transport struct {
	injector
	base http.RoundTripper
}

// NewTransport returns a fault-injecting transport over base.
func NewTransport(base http.RoundTripper) *Transport { return &Transport{base: base} }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	plan := t.current()
	if t.before(plan) {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, connReset()
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil || !t.dropResponse(plan) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return nil, connReset()
}

// connReset is the error of a connection reset by the peer.
func connReset() error {
	return &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
}
