// Command hasp-image builds hasp's container image without a Docker daemon
// (`make image`) and pushes it (`make image-push`).
//
//	hasp-image build --image REF --version V --binary linux/amd64=PATH [--binary linux/arm64=PATH]
//	                 --layout DIR [--tarball FILE] [--source URL] [--revision SHA] [--created RFC3339]
//	hasp-image push --layout DIR [--image REF]
//
// build writes an OCI image layout (every platform) to DIR and, with
// --tarball, a `docker load` tarball of the linux/amd64 image. push sends
// the layout to a registry with the credentials of ~/.docker/config.json
// (docker login, crane auth login) or a cloud credential helper.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hasplock/hasp/infra/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasp-image:", err)
		os.Exit(2)
	}
}

// binaries is the repeatable --binary PLATFORM=PATH flag.
type binaries map[string]string

func (b binaries) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binaries) Set(v string) error {
	plat, path, ok := strings.Cut(v, "=")
	if !ok || plat == "" || path == "" {
		return fmt.Errorf("want PLATFORM=PATH, have %q", v)
	}
	b[plat] = path
	return nil
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: hasp-image build|push [flags]")
	}
	switch args[0] {
	case "build":
		return build(args[1:])
	case "push":
		fs := flag.NewFlagSet("push", flag.ContinueOnError)
		dir := fs.String("layout", "", "OCI image layout written by build (required)")
		ref := fs.String("image", "", "where to push (default: the name the layout was built with)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *dir == "" {
			return errors.New("push: --layout is required")
		}
		if *ref == "" {
			_, own, err := image.ReadLayout(*dir)
			if err != nil {
				return err
			}
			*ref = own
		}
		d, err := image.Push(ctx, *dir, *ref, remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			return err
		}
		fmt.Printf("pushed %s@%s\n", *ref, d)
		return nil
	default:
		return fmt.Errorf("unknown command %q: build or push", args[0])
	}
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	bins := binaries{}
	fs.Var(bins, "binary", "PLATFORM=PATH of a static hasp binary (repeat per platform)")
	ref := fs.String("image", "", "image name and tag, e.g. ghcr.io/hasplock/hasp:0.1.0 (required)")
	version := fs.String("version", "", "org.opencontainers.image.version (required)")
	source := fs.String("source", "", "org.opencontainers.image.source")
	revision := fs.String("revision", "", "org.opencontainers.image.revision")
	created := fs.String("created", "", "creation time, RFC 3339 (default the Unix epoch): the commit's time keeps builds reproducible")
	certs := fs.String("ca-certs", image.DefaultCACerts, "CA bundle to copy into the image")
	dir := fs.String("layout", "", "directory of the OCI image layout to write (required)")
	tar := fs.String("tarball", "", "also write the linux/amd64 image as a `docker load` tarball here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ref == "" || *dir == "" {
		return errors.New("build: --image and --layout are required")
	}
	o := image.Options{Binaries: bins, CACerts: *certs, Version: *version, Source: *source, Revision: *revision}
	if *created != "" {
		t, err := time.Parse(time.RFC3339, *created)
		if err != nil {
			return fmt.Errorf("build: --created: %w", err)
		}
		o.Created = t
	}
	idx, err := image.Build(o)
	if err != nil {
		return err
	}
	if err := image.WriteLayout(*dir, *ref, idx); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s@%s (%d platforms)\n", *dir, *ref, d, len(bins))
	if *tar != "" {
		img, err := image.Platform(idx, "linux/amd64")
		if err != nil {
			return err
		}
		if err := image.WriteTarball(*tar, *ref, img); err != nil {
			return err
		}
		fmt.Printf("%s: docker load tarball (linux/amd64)\n", *tar)
	}
	return nil
}
