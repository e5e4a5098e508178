package versioncache_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/hasplock/hasp/providers/internal/versioncache"
)

func TestCache(t *testing.T) {
	c := versioncache.New[int](2, func(old, v int) bool { return old > v })
	c.Put("a", 2)
	c.Put("a", 1) // older: kept out
	v, ok := c.Get("a")
	assert.True(t, ok)
	assert.Equal(t, 2, v)
	c.Put("b", 1)
	c.Put("c", 1) // full: one other name is forgotten
	n := 0
	for _, k := range []string{"a", "b", "c"} {
		if _, ok := c.Get(k); ok {
			n++
		}
	}
	assert.Equal(t, 2, n, "at most max names")
	c.Drop("c")
	_, ok = c.Get("c")
	assert.False(t, ok)

	off := versioncache.New[int](0, nil)
	off.Put("a", 1)
	_, ok = off.Get("a")
	assert.False(t, ok, "max 0 remembers nothing")
}
