package zookeeper

import "github.com/hasplock/hasp/providers/internal/versioncache"

// newVersionCache remembers the latest version of each name's znode this
// provider read or wrote; of two versions put in any order (concurrent
// calls finish in any order) it keeps the later by mzxid, which every write
// advances.
func newVersionCache(max int) *versioncache.Cache[version] {
	return versioncache.New(max, func(old, v version) bool { return old.mzxid > v.mzxid })
}
