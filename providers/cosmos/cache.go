package cosmos

import "github.com/hasplock/hasp/providers/internal/versioncache"

// newVersionCache remembers the last version of each name's document
// that this provider read or wrote (see the package documentation).
func newVersionCache(max int) *versioncache.Cache[version] {
	return versioncache.New[version](max, nil)
}
