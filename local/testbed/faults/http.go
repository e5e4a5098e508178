package faults

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
)

// HTTPProxy is a reverse proxy to an HTTP backend that injects faults per
// request.
type HTTPProxy struct {
	injector
	srv *httptest.Server
	tr  *http.Transport
	rp  *httputil.ReverseProxy
}

// NewHTTPProxy starts a proxy on 127.0.0.1 in front of target (a URL).
func NewHTTPProxy(target string) (*HTTPProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &HTTPProxy{tr: &http.Transport{MaxIdleConnsPerHost: 64}}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.Transport = p.tr
	p.rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	return p, nil
}

// URL is the proxy's URL.
func (p *HTTPProxy) URL() string { return p.srv.URL }

// Close stops the proxy.
func (p *HTTPProxy) Close() error {
	p.srv.CloseClientConnections()
	p.srv.Close()
	p.tr.CloseIdleConnections()
	return nil
}

func (p *HTTPProxy) serve(w http.ResponseWriter, r *http.Request) {
	plan := p.current()
	if p.before(plan) {
		hangUp(w)
		return
	}
	if p.dropResponse(plan) {
		// Apply the request at the backend, then lose the answer.
		p.rp.ServeHTTP(httptest.NewRecorder(), r)
		hangUp(w)
		return
	}
	p.rp.ServeHTTP(w, r)
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset, not a polite close
			}
			_ = c.Close()
			return
		}
	}
	w.WriteHeader(http.StatusBadGateway)
}
