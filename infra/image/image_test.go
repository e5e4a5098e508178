package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/infra/image"
	"github.com/hasplock/hasp/infra/internal/repo"
)

var platforms = []string{"linux/amd64", "linux/arm64"} // the Makefile's IMAGE_PLATFORMS

// built is what one `make image` into a temporary IMAGE_DIR produced,
// shared by the tests.
var built struct {
	once      sync.Once
	dir, root string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// makeImage runs `make image` once, with IMAGE_DIR in a temporary
// directory and every other variable the Makefile's default.
func makeImage(t *testing.T) (dir, root string) {
	t.Helper()
	built.once.Do(func() {
		if built.root, built.err = repo.Root(); built.err != nil {
			return
		}
		if built.dir, built.err = os.MkdirTemp("", "hasp-image-test"); built.err != nil {
			return
		}
		cmd := exec.Command("make", "--no-print-directory", "-C", built.root, "image", "IMAGE_DIR="+built.dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			built.err = errors.New("make image: " + err.Error() + "\n" + string(out))
		}
	})
	require.NoError(t, built.err)
	return built.dir, built.root
}

func layoutDir(t *testing.T, dir, root string) string {
	vars, err := repo.MakeVars(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	return filepath.Join(dir, "hasp-"+vars["VERSION"])
}

func git(t *testing.T, root string, args ...string) string {
	out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

type file struct {
	hdr  *tar.Header
	data []byte
}

// files flattens an image's layers.
func files(t *testing.T, img v1.Image) map[string]file {
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[strings.TrimSuffix(h.Name, "/")] = file{h, b}
	}
	return out
}

// TestMakeImage builds the image with `make image` and reads it back: the
// name the Kubernetes manifests use, one image per platform with the
// entrypoint, user, labels, the static hasp binary, CA bundle and passwd;
// and the docker-load tarball of linux/amd64.
func TestMakeImage(t *testing.T) {
	dir, root := makeImage(t)
	idx, ref, err := image.ReadLayout(layoutDir(t, dir, root))
	require.NoError(t, err)
	want, err := repo.Image(root)
	require.NoError(t, err)
	assert.Equal(t, want, ref, "the layout is named $(IMAGE):$(VERSION)")

	m, err := idx.IndexManifest()
	require.NoError(t, err)
	var got []string
	for _, d := range m.Manifests {
		got = append(got, d.Platform.String())
	}
	assert.Equal(t, platforms, got)

	certs, err := os.ReadFile(image.DefaultCACerts)
	require.NoError(t, err)
	vars, err := repo.MakeVars(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	for _, p := range platforms {
		t.Run(p, func(t *testing.T) {
			img, err := image.Platform(idx, p)
			require.NoError(t, err)
			mt, err := img.MediaType()
			require.NoError(t, err)
			assert.Equal(t, "application/vnd.oci.image.manifest.v1+json", string(mt))
			cfg, err := img.ConfigFile()
			require.NoError(t, err)
			assert.Equal(t, p, cfg.OS+"/"+cfg.Architecture)
			assert.Equal(t, []string{"/hasp", "serve"}, cfg.Config.Entrypoint)
			assert.Empty(t, cfg.Config.Cmd)
			assert.Equal(t, "65532:65532", cfg.Config.User)
			assert.Contains(t, cfg.Config.Env, "HASP_LISTEN=:8080", "listens on every interface in a container")
			assert.Contains(t, cfg.Config.ExposedPorts, "8080/tcp")
			l := cfg.Config.Labels
			assert.Equal(t, vars["VERSION"], l["org.opencontainers.image.version"])
			assert.Equal(t, "https://github.com/hasplock/hasp", l["org.opencontainers.image.source"])
			assert.Equal(t, git(t, root, "rev-parse", "HEAD"), l["org.opencontainers.image.revision"])
			assert.Equal(t, "hasp", l["org.opencontainers.image.title"])

			fs := files(t, img)
			bin, ok := fs["hasp"]
			require.True(t, ok, "/hasp is in the image")
			assert.Equal(t, byte(tar.TypeReg), bin.hdr.Typeflag)
			assert.Equal(t, int64(0o755), bin.hdr.Mode, "executable by the nonroot user, writable by root only")
			assert.Equal(t, 0, bin.hdr.Uid)
			plat, err := v1.ParsePlatform(p)
			require.NoError(t, err)
			assert.NoError(t, image.CheckStatic(bin.data, plat), "static, for its platform")
			built, err := os.ReadFile(filepath.Join(dir, "bin", strings.ReplaceAll(p, "/", "-"), "hasp"))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(built, bin.data), "the binary make image built")

			assert.Equal(t, certs, fs["etc/ssl/certs/ca-certificates.crt"].data, "the build machine's CA bundle")
			assert.Contains(t, string(fs["etc/passwd"].data), "\nnonroot:x:65532:65532:nonroot:/home/nonroot:")
			assert.Contains(t, string(fs["etc/group"].data), "nonroot:x:65532:")
			home := fs["home/nonroot"].hdr
			require.NotNil(t, home)
			assert.Equal(t, [2]int{65532, 65532}, [2]int{home.Uid, home.Gid}, "the working directory belongs to nonroot")
			assert.Equal(t, int64(0o1777), fs["tmp"].hdr.Mode)

			if p == "linux/amd64" {
				// This machine is linux/amd64: the binary from the image runs.
				exe := filepath.Join(t.TempDir(), "hasp")
				require.NoError(t, os.WriteFile(exe, bin.data, os.FileMode(bin.hdr.Mode)))
				out, err := exec.Command(exe, "serve", "--help").CombinedOutput()
				require.NoError(t, err, "%s", out)
				assert.Contains(t, string(out), "--store")
			}
		})
	}

	tb, err := tarball.ImageFromPath(filepath.Join(dir, "hasp-"+vars["VERSION"]+"-linux-amd64.tar"), nil)
	require.NoError(t, err)
	amd, err := image.Platform(idx, "linux/amd64")
	require.NoError(t, err)
	c1, err := tb.ConfigName()
	require.NoError(t, err)
	c2, err := amd.ConfigName()
	require.NoError(t, err)
	assert.Equal(t, c2, c1, "the tarball holds the linux/amd64 image")
}

// TestReproducible: building again from the same binaries, with what the
// Makefile passes, gives the same index digest.
func TestReproducible(t *testing.T) {
	dir, root := makeImage(t)
	idx, _, err := image.ReadLayout(layoutDir(t, dir, root))
	require.NoError(t, err)
	vars, err := repo.MakeVars(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	created, err := time.Parse(time.RFC3339, git(t, root, "log", "-1", "--format=%cI"))
	require.NoError(t, err)
	o := image.Options{
		Binaries: map[string]string{}, Version: vars["VERSION"], Source: vars["IMAGE_SOURCE"],
		Revision: git(t, root, "rev-parse", "HEAD"), Created: created,
	}
	for _, p := range platforms {
		o.Binaries[p] = filepath.Join(dir, "bin", strings.ReplaceAll(p, "/", "-"), "hasp")
	}
	again, err := image.Build(o)
	require.NoError(t, err)
	d1, err := idx.Digest()
	require.NoError(t, err)
	d2, err := again.Digest()
	require.NoError(t, err)
	assert.Equal(t, d1, d2)
}

// TestPush pushes the layout to an in-process registry on loopback (what
// make image-push does against a real one) and pulls it back.
func TestPush(t *testing.T) {
	dir, root := makeImage(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/hasplock/hasp:test"
	pushed, err := image.Push(context.Background(), layoutDir(t, dir, root), ref)
	require.NoError(t, err)

	tag, err := name.NewTag(ref)
	require.NoError(t, err)
	idx, err := remote.Index(tag)
	require.NoError(t, err)
	d, err := idx.Digest()
	require.NoError(t, err)
	assert.Equal(t, pushed, d)
	img, err := remote.Image(tag, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	require.NoError(t, err)
	cfg, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "arm64", cfg.Architecture)
}

func TestBuildRejects(t *testing.T) {
	dir, _ := makeImage(t)
	amd64 := filepath.Join(dir, "bin", "linux-amd64", "hasp")
	notELF := filepath.Join(t.TempDir(), "hasp")
	require.NoError(t, os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755))
	cases := map[string]struct {
		o   image.Options
		err string
	}{
		"wrong architecture": {image.Options{Version: "1", Binaries: map[string]string{"linux/arm64": amd64}}, "built for EM_X86_64, not arm64"},
		"not an executable":  {image.Options{Version: "1", Binaries: map[string]string{"linux/amd64": notELF}}, "not an ELF executable"},
		"other OS":           {image.Options{Version: "1", Binaries: map[string]string{"windows/amd64": amd64}}, "unsupported platform"},
		"no version":         {image.Options{Binaries: map[string]string{"linux/amd64": amd64}}, "no version"},
		"no binary":          {image.Options{Version: "1"}, "no binary"},
	}
	if dyn, err := exec.LookPath("git"); err == nil { // a dynamically linked system binary
		cases["dynamic"] = struct {
			o   image.Options
			err string
		}{image.Options{Version: "1", Binaries: map[string]string{"linux/amd64": dyn}}, "dynamically linked"}
	}
	for n, c := range cases {
		_, err := image.Build(c.o)
		assert.ErrorContains(t, err, c.err, n)
	}
}
