package cosmos

import "sync"

// versionCache remembers the last version of each name's document that
// this provider read or wrote, for at most max names. It is only ever the
// base of a conditional write (see the package documentation), so an
// out-of-date entry costs a 412 and a read, never a wrong answer.
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

// put remembers v for name; when full, it forgets an arbitrary other name.
func (c *versionCache) put(name string, v version) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[name]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[name] = v
}

func (c *versionCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}
