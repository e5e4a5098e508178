package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGenerated: infra/metrics/catalog_gen.go is what the catalogue
// renders now; after a change to the catalogue, run
// `go generate ./telemetry/catalog`.
func TestGenerated(t *testing.T) {
	want, err := render()
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "infra", "metrics", "catalog_gen.go"))
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "infra/metrics/catalog_gen.go is stale: run go generate ./telemetry/catalog")
}
