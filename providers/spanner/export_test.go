package spanner

import "time"

// MapErr exposes mapErr to the tests.
var MapErr = mapErr

// SetRecheckInterval sets how often, at most, a permit operation on a
// table without the permits column asks about the column again.
func SetRecheckInterval(p *Provider, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recheck = d
}
