package zookeeper

import "sync"

// versionCache remembers, for at most max names, the latest version of
// each name's znode this provider read or wrote. An entry is only ever the
// base of a write conditioned on its data version, so an out-of-date entry
// costs a failed write and a read, never a wrong answer.
type versionCache struct {
	mu  sync.Mutex
	max int
	m   map[string]version
}

func newVersionCache(max int) *versionCache {
	return &versionCache{max: max, m: map[string]version{}}
}

func (c *versionCache) get(name string) (version, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[name]
	return v, ok
}

// put remembers v unless a later version (by mzxid, which every write
// advances) is remembered already: concurrent calls finish in any order.
// When full, it forgets an arbitrary other name.
func (c *versionCache) put(name string, v version) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[name]
	if ok && old.mzxid > v.mzxid {
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

// drop forgets name, after a write conditioned on its version failed or
// had an unknown outcome.
func (c *versionCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}
