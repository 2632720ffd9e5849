// Package image builds, writes and unpacks kube-eip's OCI image without a
// container engine. The image is assembled from files alone (the static
// binary and a CA bundle) so that `make image` works on machines without
// docker, and so that the same commit yields the same digest everywhere:
// every timestamp is the commit time, every owner is root and every input
// is pinned by go.sum.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image's contract with the Dockerfile and the manifests of deploy/.
// cmd/kube-eip's tests compare these with the Dockerfile, so the two ways
// of building the image cannot drift apart.
const (
	// Entrypoint is the image's whole entrypoint: the kube-eip binary,
	// which takes its subcommand (webhook, binder, wait) as first argument.
	Entrypoint = "/kube-eip"
	// User is distroless's nonroot uid:gid. The webhook injects the wait
	// container with the same uid, so pods in restricted namespaces admit it.
	User = "65532:65532"
	// CABundle is where the image keeps its trusted roots; SSL_CERT_FILE
	// points Go's crypto/x509 at it, since the image has no other roots.
	CABundle = "/etc/ssl/certs/ca-certificates.crt"
	// Source is the org.opencontainers.image.source label.
	Source = "https://github.com/kube-eip/kube-eip"
	// Title is the org.opencontainers.image.title label.
	Title = "kube-eip"
)

// envPath is distroless's PATH; kube-eip runs no other program, but tools
// that exec into a container expect one.
const envPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BuildOptions are the inputs of Build. The digest is a function of them
// (and of the pinned dependencies) alone.
type BuildOptions struct {
	// Binary is the path of the static linux kube-eip binary.
	Binary string
	// Version and Revision become the version and revision labels; empty
	// ones are left out.
	Version  string
	Revision string
	// Created is the time of every file and of the image itself: the commit
	// time (git log -1 --format=%ct, or SOURCE_DATE_EPOCH) rather than the
	// build time, so rebuilding a commit reproduces its digest. The zero
	// value means the Unix epoch.
	Created time.Time
	// Arch is the GOARCH the binary was built for; empty means amd64.
	Arch string
}

// Build assembles the image: no base, one layer holding the binary, the CA
// bundle and /tmp, and a config that runs the binary as User.
func Build(opts BuildOptions) (v1.Image, error) {
	binary, err := os.ReadFile(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("reading the kube-eip binary: %w", err)
	}
	if len(binary) == 0 {
		return nil, fmt.Errorf("the kube-eip binary %s is empty", opts.Binary)
	}
	created := opts.Created.UTC().Truncate(time.Second)
	if opts.Created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	arch := opts.Arch
	if arch == "" {
		arch = "amd64"
	}

	layer, err := buildLayer(created, []file{
		{name: "etc/", mode: 0o755},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: CABundle[1:], mode: 0o444, data: caBundle()},
		{name: Entrypoint[1:], mode: 0o555, data: binary},
		// Programs expect a writable /tmp even in a distroless image.
		{name: "tmp/", mode: 0o1777},
	})
	if err != nil {
		return nil, err
	}

	labels := map[string]string{
		"org.opencontainers.image.source":  Source,
		"org.opencontainers.image.title":   Title,
		"org.opencontainers.image.created": created.Format(time.RFC3339),
	}
	if opts.Version != "" {
		labels["org.opencontainers.image.version"] = opts.Version
	}
	if opts.Revision != "" {
		labels["org.opencontainers.image.revision"] = opts.Revision
	}
	cfg := &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      v1.Time{Time: created},
		// mutate.Append fills in the diff IDs; runtimes insist on the type.
		RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: []string{Entrypoint},
			User:       User,
			Env:        []string{envPath, "SSL_CERT_FILE=" + CABundle},
			WorkingDir: "/",
			Labels:     labels,
		},
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("setting the image config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "go run ./hack/image",
			Comment:   "kube-eip binary and CA bundle",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("appending the layer: %w", err)
	}
	return img, nil
}

// file is one entry of the layer; a name ending in / is a directory.
type file struct {
	name string
	mode int64
	data []byte
}

// buildLayer writes files into a gzipped tar with every header field that
// could differ between machines fixed: sorted names, one time, root owner
// without names. It compresses once, here, so that the digest does not
// depend on how often ggcr asks for the compressed stream.
func buildLayer(created time.Time, files []file) (v1.Layer, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var tgz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&tgz, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("starting gzip: %w", err)
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		hdr := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			ModTime: created,
		}
		if strings.HasSuffix(f.name, "/") {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("writing the tar header of %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("writing %s into the layer: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finishing the layer's tar: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("finishing the layer's gzip: %w", err)
	}
	data := tgz.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("making the layer: %w", err)
	}
	return layer, nil
}

// caBundle renders the Mozilla roots that golang.org/x/crypto/x509roots
// embeds as PEM, in the bundle's own order. Taking them from a module
// pinned in go.sum, rather than from the build host's
// /etc/ssl/certs, keeps the digest the same on every machine.
//
// Roots with a distrust-after date are left out: a PEM file cannot carry
// that constraint, and trusting such a root without it would accept
// certificates Mozilla no longer does.
func caBundle() []byte {
	var out bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		// Writing to a bytes.Buffer cannot fail.
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate})
	}
	return out.Bytes()
}
