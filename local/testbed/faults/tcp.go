package faults

import (
	"io"
	"net"
	"sync"
)

// TCPProxy forwards TCP connections from a loopback port to a target,
// injecting faults per chunk of traffic.
type TCPProxy struct {
	injector
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewTCPProxy listens on 127.0.0.1 and forwards to target ("host:port").
func NewTCPProxy(target string) (*TCPProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &TCPProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address.
func (p *TCPProxy) Addr() string { return p.ln.Addr().String() }

// SetTarget sends new connections to another address (after a backend
// restart on another port).
func (p *TCPProxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// ResetAll closes every open connection, as a network blip would.
func (p *TCPProxy) ResetAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		p.resets.Add(1)
	}
}

// Close stops the proxy and closes every connection.
func (p *TCPProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *TCPProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *TCPProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c, target)
		}()
	}
}

func (p *TCPProxy) serve(client net.Conn, target string) {
	defer client.Close()
	backend, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer backend.Close()
	p.track(client, true)
	p.track(backend, true)
	defer p.track(client, false)
	defer p.track(backend, false)
	var once sync.Once
	closeBoth := func() { once.Do(func() { client.Close(); backend.Close() }) }
	var wg sync.WaitGroup
	wg.Add(2)
	// Requests: client to backend.
	go func() {
		defer wg.Done()
		defer closeBoth()
		p.pipe(backend, client, false)
	}()
	// Responses: backend to client.
	go func() {
		defer wg.Done()
		defer closeBoth()
		p.pipe(client, backend, true)
	}()
	wg.Wait()
}

// pipe copies chunks from src to dst, applying faults to each chunk.
func (p *TCPProxy) pipe(dst io.Writer, src io.Reader, responses bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			plan := p.current()
			if p.before(plan) {
				return // reset
			}
			if responses && p.dropResponse(plan) {
				return // the request went through; its answer never arrives
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
