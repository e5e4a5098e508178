// Package versioncache is the bounded memory of the last version of each
// lock's record that a provider read or wrote, for providers whose writes
// are conditioned on a version (an etag, a znode version): a write based on
// a remembered version saves the read before it. An entry is only ever the
// base of a conditional write, so an out-of-date one costs a failed
// condition and a read, never a wrong answer.
package versioncache

import "sync"

// Cache remembers one version V per name, for at most max names (none when
// max ≤ 0). It is safe for concurrent use.
type Cache[V any] struct {
	mu    sync.Mutex
	max   int
	m     map[string]V
	newer func(old, v V) bool
}

// New returns a cache of at most max names. newer, if set, reports whether
// old was written after v, so that a put of an older version (concurrent
// calls finish in any order) keeps the newer one.
func New[V any](max int, newer func(old, v V) bool) *Cache[V] {
	return &Cache[V]{max: max, m: map[string]V{}, newer: newer}
}

// Get returns the version remembered for name.
func (c *Cache[V]) Get(name string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[name]
	return v, ok
}

// Put remembers v for name; when full, it forgets an arbitrary other name.
func (c *Cache[V]) Put(name string, v V) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[name]
	if ok && c.newer != nil && c.newer(old, v) {
		return
	}
	if !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[name] = v
}

// Drop forgets name, after a write conditioned on its version failed or
// had an unknown outcome.
func (c *Cache[V]) Drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}
