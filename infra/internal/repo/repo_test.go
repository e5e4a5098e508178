package repo

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMakeVars(t *testing.T) {
	mk := filepath.Join(t.TempDir(), "Makefile")
	require.NoError(t, os.WriteFile(mk, []byte(`# top
IMAGE    ?= ghcr.io/x/hasp   # trailing comment
VERSION := 1.2.3
VERSION ?= 9.9.9
OTHER = $(IMAGE)
image:
	VERSION=nope make
`), 0o644))
	vars, err := MakeVars(mk)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"IMAGE": "ghcr.io/x/hasp", "VERSION": "1.2.3", "OTHER": "$(IMAGE)"}, vars)
}

func TestImage(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Makefile"), []byte("IMAGE ?= ghcr.io/x/hasp\nVERSION ?= $(shell git describe)\n"), 0o644))
	_, err := Image(dir)
	assert.ErrorContains(t, err, "plain values", "a computed version cannot match static manifests")

	root, err := Root()
	require.NoError(t, err)
	img, err := Image(root)
	require.NoError(t, err)
	assert.Regexp(t, `^[a-z0-9./-]+:[A-Za-z0-9_.-]+$`, img)
}
