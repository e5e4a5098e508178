// Package image builds hasp's container image without a Docker daemon and
// without pulling a base image: the static hasp binary, the build machine's
// CA certificates and an /etc/passwd with the user nonroot (65532), as an
// OCI image index with one image per platform.
//
// `make image` calls it through cmd/hasp-image; `make image-push` pushes
// the result. Builds are reproducible: every time stamp is Options.Created.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed contents.
const (
	// Binary is where the hasp binary lives in the image.
	Binary = "/hasp"
	// CACertsPath is where the CA bundle lives in the image (Go's
	// crypto/x509 looks there on Linux).
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	// DefaultCACerts is the build machine's bundle that Build copies when
	// Options.CACerts is empty.
	DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"
	// User is the image's user: nonroot, uid and gid 65532.
	User = "65532:65532"
	// Port is where `hasp serve` listens in the image (HASP_LISTEN=:8080).
	Port = 8080

	refNameAnnotation   = "org.opencontainers.image.ref.name"
	containerdImageName = "io.containerd.image.name"
)

// Entrypoint is the image's entrypoint: arguments given to the container
// are flags of `hasp serve`.
var Entrypoint = []string{Binary, "serve"}

// Options says what goes into the image.
type Options struct {
	// Binaries maps a platform ("linux/amd64", "linux/arm64") to the path of
	// a static hasp binary built for it (CGO_ENABLED=0). Required.
	Binaries map[string]string
	// CACerts is the CA bundle to copy; DefaultCACerts when empty.
	CACerts string
	// Version, Revision and Source fill the OCI labels
	// org.opencontainers.image.version, .revision and .source. Version is
	// required.
	Version, Revision, Source string
	// Created is the image's creation time and every file's modification
	// time; the commit's time makes builds reproducible. Zero is the Unix
	// epoch.
	Created time.Time
}

// Labels returns the OCI labels Build writes into each image's config (and
// as annotations on the index).
func (o Options) Labels() map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "hasp",
		"org.opencontainers.image.description": "hasp, a distributed lock service with leases and fencing tokens",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.created":     o.created().Format(time.RFC3339),
	}
	if o.Source != "" {
		l["org.opencontainers.image.source"] = o.Source
		l["org.opencontainers.image.url"] = o.Source
	}
	if o.Revision != "" {
		l["org.opencontainers.image.revision"] = o.Revision
	}
	return l
}

func (o Options) created() time.Time {
	if o.Created.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return o.Created.UTC().Truncate(time.Second)
}

// Build returns the image index: one OCI image per platform, in platform
// order. Each binary must be a static Linux ELF executable for its
// platform's architecture.
func Build(o Options) (v1.ImageIndex, error) {
	if len(o.Binaries) == 0 {
		return nil, errors.New("image: no binary given")
	}
	if o.Version == "" {
		return nil, errors.New("image: no version given")
	}
	certsPath := o.CACerts
	if certsPath == "" {
		certsPath = DefaultCACerts
	}
	certs, err := os.ReadFile(certsPath)
	if err != nil {
		return nil, fmt.Errorf("image: CA certificates: %w", err)
	}
	base, err := baseLayer(certs, o.created())
	if err != nil {
		return nil, err
	}
	platforms := make([]string, 0, len(o.Binaries))
	for p := range o.Binaries {
		platforms = append(platforms, p)
	}
	slices.Sort(platforms)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("image: platform %q: %w", p, err)
		}
		img, err := platformImage(o, plat, o.Binaries[p], base)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: plat.OS, Architecture: plat.Architecture}},
		})
	}
	return mutate.Annotations(idx, o.Labels()).(v1.ImageIndex), nil
}

func platformImage(o Options, plat *v1.Platform, binPath string, base v1.Layer) (v1.Image, error) {
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return nil, fmt.Errorf("image: %s binary: %w", plat, err)
	}
	if err := CheckStatic(bin, plat); err != nil {
		return nil, fmt.Errorf("image: %s: %w", binPath, err)
	}
	created := o.created()
	binLayer, err := layer([]entry{{path: strings.TrimPrefix(Binary, "/"), mode: 0o755, data: bin}}, created)
	if err != nil {
		return nil, err
	}
	cfg := &v1.ConfigFile{
		Created:      v1.Time{Time: created},
		Architecture: plat.Architecture,
		OS:           plat.OS,
		Config: v1.Config{
			Entrypoint: Entrypoint,
			User:       User,
			WorkingDir: "/home/nonroot",
			Env: []string{
				"PATH=/",
				"SSL_CERT_FILE=" + CACertsPath,
				fmt.Sprintf("HASP_LISTEN=:%d", Port),
			},
			ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", Port): {}},
			Labels:       o.Labels(),
		},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "hasp-image: CA certificates, /etc/passwd (nonroot 65532)"}},
		mutate.Addendum{Layer: binLayer, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "hasp-image: " + Binary}},
	)
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
}

// CheckStatic fails unless bin is a statically linked Linux ELF executable
// for plat's architecture (no program interpreter, so it runs in an image
// with no libc).
func CheckStatic(bin []byte, plat *v1.Platform) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[plat.Architecture]
	if plat.OS != "linux" || want == elf.EM_NONE {
		return fmt.Errorf("unsupported platform %s (linux/amd64 and linux/arm64 are)", plat)
	}
	if f.Machine != want {
		return fmt.Errorf("built for %s, not %s", f.Machine, plat.Architecture)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %s is not an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked: build it with CGO_ENABLED=0")
		}
	}
	return nil
}

// entry is one file or directory of a layer.
type entry struct {
	path     string
	mode     int64
	uid, gid int
	dir      bool
	data     []byte
}

// baseLayer holds what every platform shares: the CA bundle, /etc/passwd
// and /etc/group with nonroot, nsswitch.conf, /tmp and nonroot's home.
func baseLayer(certs []byte, created time.Time) (v1.Layer, error) {
	return layer([]entry{
		{path: "etc", mode: 0o755, dir: true},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "etc/ssl", mode: 0o755, dir: true},
		{path: "etc/ssl/certs", mode: 0o755, dir: true},
		{path: strings.TrimPrefix(CACertsPath, "/"), mode: 0o644, data: certs},
		{path: "home", mode: 0o755, dir: true},
		{path: "home/nonroot", mode: 0o700, uid: 65532, gid: 65532, dir: true},
		{path: "tmp", mode: 0o1777, dir: true},
	}, created)
}

// layer returns an OCI layer (gzip) of entries, in the given order.
func layer(entries []entry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.path, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime,
			Typeflag: tar.TypeReg, Size: int64(len(e.data)), Format: tar.FormatPAX,
		}
		if e.dir {
			h.Name, h.Typeflag, h.Size = e.path+"/", tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// WriteLayout writes idx as an OCI image layout in dir (replacing what was
// there), named ref ("ghcr.io/hasplock/hasp:0.1.0"): index.json holds one
// descriptor, of idx, annotated with the tag and the full name.
func WriteLayout(dir, ref string, idx v1.ImageIndex) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		refNameAnnotation:   tag.TagStr(),
		containerdImageName: tag.Name(),
	}))
}

// ReadLayout reads back what WriteLayout wrote: the index and its name.
func ReadLayout(dir string) (v1.ImageIndex, string, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, "", fmt.Errorf("image: %w", err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, "", err
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		return nil, "", fmt.Errorf("image: %s: want one image index in index.json, have %d descriptors", dir, len(m.Manifests))
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		return nil, "", err
	}
	return idx, m.Manifests[0].Annotations[containerdImageName], nil
}

// Platform returns the image of one platform ("linux/amd64") in idx.
func Platform(idx v1.ImageIndex, platform string) (v1.Image, error) {
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.OS == want.OS && d.Platform.Architecture == want.Architecture {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("image: no %s image in the index", platform)
}

// WriteTarball writes img as a `docker load` tarball tagged ref.
func WriteTarball(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return tarball.WriteToFile(path, tag, img)
}

// Push pushes the layout in dir to ref (the layout's own name when ref is
// empty), every platform and the index, and returns the index's digest.
func Push(ctx context.Context, dir, ref string, opts ...remote.Option) (v1.Hash, error) {
	idx, own, err := ReadLayout(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	if ref == "" {
		ref = own
	}
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image: %w", err)
	}
	if err := remote.WriteIndex(tag, idx, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return v1.Hash{}, fmt.Errorf("image: push %s: %w", tag, err)
	}
	return idx.Digest()
}
