package local_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/service"
)

// TestOpenEmbedded opens "embedded:PATH" twice in a row on one directory:
// the second sees the first's lease and issues a greater token.
func TestOpenEmbedded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	p, err := providers.Open(ctx, "embedded:"+dir)
	require.NoError(t, err)
	assert.Equal(t, "etcd", p.Name())
	s := service.New(p)
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "x"})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	p, err = providers.Open(ctx, "embedded:"+dir)
	require.NoError(t, err)
	s = service.New(p)
	defer s.Close()
	st, err := s.Status(ctx, "x")
	require.NoError(t, err)
	assert.Equal(t, l.FencingToken, st.Holder.FencingToken)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "x", LeaseID: l.LeaseID}))
	l2, err := s.Acquire(ctx, lock.AcquireRequest{Name: "x"})
	require.NoError(t, err)
	assert.Greater(t, l2.FencingToken, l.FencingToken)
}
