package image

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const testRef = "ghcr.io/kube-eip/kube-eip:test"

var commitTime = time.Unix(1767225600, 0)

func fakeBinary(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kube-eip")
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t *testing.T, opts BuildOptions) v1.Image {
	t.Helper()
	img, err := Build(opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return img
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestBuildIsReproducible(t *testing.T) {
	opts := BuildOptions{Binary: fakeBinary(t, "#!fake"), Version: "v1.2.3", Revision: "abc", Created: commitTime}
	first := digestOf(t, build(t, opts))

	// Another copy of the binary, with its own file time, must not matter.
	opts.Binary = fakeBinary(t, "#!fake")
	if second := digestOf(t, build(t, opts)); second != first {
		t.Errorf("the same inputs built %s, then %s", first, second)
	}

	opts.Created = commitTime.Add(time.Second)
	if other := digestOf(t, build(t, opts)); other == first {
		t.Errorf("another commit time built the same digest %s", first)
	}
}

func TestBuildConfig(t *testing.T) {
	img := build(t, BuildOptions{Binary: fakeBinary(t, "#!fake"), Version: "v1.2.3", Revision: "abc", Created: commitTime, Arch: "arm64"})
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("User = %q, want the non-root 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/kube-eip"}) {
		t.Errorf("Entrypoint = %q, want [/kube-eip]", c.Entrypoint)
	}
	if !slices.Contains(c.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("Env = %q, want SSL_CERT_FILE set", c.Env)
	}
	if c.WorkingDir != "/" {
		t.Errorf("WorkingDir = %q, want /", c.WorkingDir)
	}
	if cf.OS != "linux" || cf.Architecture != "arm64" {
		t.Errorf("platform = %s/%s, want linux/arm64", cf.OS, cf.Architecture)
	}
	if cf.RootFS.Type != "layers" || len(cf.RootFS.DiffIDs) != 1 {
		t.Errorf("RootFS = %+v, want one layer of type layers", cf.RootFS)
	}
	if !cf.Created.Equal(commitTime) {
		t.Errorf("Created = %v, want the commit time %v", cf.Created, commitTime)
	}
	want := map[string]string{
		"org.opencontainers.image.source":   Source,
		"org.opencontainers.image.title":    "kube-eip",
		"org.opencontainers.image.version":  "v1.2.3",
		"org.opencontainers.image.revision": "abc",
		"org.opencontainers.image.created":  "2026-01-01T00:00:00Z",
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}

	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types = %s, config %s, want OCI ones", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("layers = %+v, want one %s", m.Layers, types.OCILayer)
	}
}

func TestBuildWithoutCreatedUsesTheEpoch(t *testing.T) {
	cf, err := build(t, BuildOptions{Binary: fakeBinary(t, "x")}).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cf.Created.Equal(time.Unix(0, 0)) || cf.Architecture != "amd64" {
		t.Errorf("Created = %v, arch %s; want the epoch and amd64", cf.Created, cf.Architecture)
	}
}

func TestLayerHeadersAreFixed(t *testing.T) {
	img := build(t, BuildOptions{Binary: fakeBinary(t, "#!fake"), Created: commitTime})
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	var names []string
	for tr := tar.NewReader(rc); ; {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s is owned by %d:%d (%q:%q), want 0:0 without names", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
		}
		if !hdr.ModTime.Equal(commitTime) {
			t.Errorf("%s has time %v, want the commit time", hdr.Name, hdr.ModTime)
		}
	}
	want := []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt", "kube-eip", "tmp/"}
	if !slices.Equal(names, want) {
		t.Errorf("entries = %q, want %q", names, want)
	}
}

func TestCABundleHoldsTheMozillaRoots(t *testing.T) {
	rest := caBundle()
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Fatalf("certificate %d: %v", n, err)
		}
		n++
	}
	if len(bytes.TrimSpace(rest)) != 0 || n < 100 {
		t.Errorf("the bundle holds %d certificates and %d stray bytes, want 100 or more and none", n, len(rest))
	}
}

func TestWriteAndUnpack(t *testing.T) {
	img := build(t, BuildOptions{Binary: fakeBinary(t, "#!fake binary"), Version: "v1", Created: commitTime})
	out := t.TempDir()
	layoutDir, tarPath := filepath.Join(out, "oci"), filepath.Join(out, "kube-eip.tar")
	digest, err := Write(img, layoutDir, tarPath, testRef)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if digest != digestOf(t, img) {
		t.Errorf("Write returned %s, want the image's %s", digest, digestOf(t, img))
	}

	tag, err := name.NewTag(testRef)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := tarball.ImageFromPath(tarPath, &tag)
	if err != nil {
		t.Fatalf("reading the tarball back: %v", err)
	}
	// A docker tarball keeps the config but not the OCI manifest, so the
	// image ID (the config's digest) is what survives docker load.
	gotID, err := loaded.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	wantID, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if gotID != wantID {
		t.Errorf("the tarball holds image %s, want %s", gotID, wantID)
	}

	dest := filepath.Join(t.TempDir(), "rootfs")
	cfg, err := Unpack(layoutDir, dest)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if cfg.Digest != digest || cfg.User != User || !slices.Equal(cfg.Entrypoint, []string{Entrypoint}) || cfg.WorkingDir != "/" || len(cfg.Env) != 2 {
		t.Errorf("Unpack returned %+v", cfg)
	}
	data, err := os.ReadFile(filepath.Join(dest, "kube-eip"))
	if err != nil || string(data) != "#!fake binary" {
		t.Errorf("kube-eip = %q, %v", data, err)
	}
	data, err = os.ReadFile(filepath.Join(dest, CABundle))
	if err != nil || !bytes.Equal(data, caBundle()) {
		t.Errorf("the CA bundle did not round-trip: %v", err)
	}
	for p, want := range map[string]fs.FileMode{
		"kube-eip":                          0o555,
		"etc/ssl/certs/ca-certificates.crt": 0o444,
		"etc/ssl/certs":                     fs.ModeDir | 0o755,
		"tmp":                               fs.ModeDir | fs.ModeSticky | 0o777,
	} {
		fi, err := os.Lstat(filepath.Join(dest, p))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode(), want)
		}
	}

	// A second Unpack of the same image leaves dest alone.
	sentinel := filepath.Join(dest, "sentinel")
	if err := os.WriteFile(sentinel, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Unpack(layoutDir, dest); err != nil {
		t.Fatalf("Unpack again: %v", err)
	}
	if _, err := os.Stat(sentinel); err != nil {
		t.Errorf("the second Unpack re-extracted: %v", err)
	}

	// Another image replaces the earlier unpack, and Write replaces the
	// earlier layout rather than adding to it.
	img2 := build(t, BuildOptions{Binary: fakeBinary(t, "#!other"), Created: commitTime})
	if _, err := Write(img2, layoutDir, tarPath, testRef); err != nil {
		t.Fatalf("Write again: %v", err)
	}
	cfg2, err := Unpack(layoutDir, dest)
	if err != nil {
		t.Fatalf("Unpack of another image: %v", err)
	}
	if cfg2.Digest == digest {
		t.Errorf("Unpack returned the old digest")
	}
	if _, err := os.Stat(sentinel); err == nil {
		t.Errorf("the earlier unpack was not replaced")
	}
	if data, _ := os.ReadFile(filepath.Join(dest, "kube-eip")); string(data) != "#!other" {
		t.Errorf("kube-eip = %q after the second image", data)
	}
}

func TestUnpackIntoManyDirectoriesAtOnce(t *testing.T) {
	img := build(t, BuildOptions{Binary: fakeBinary(t, "#!fake"), Created: commitTime})
	out := t.TempDir()
	layoutDir := filepath.Join(out, "oci")
	if _, err := Write(img, layoutDir, filepath.Join(out, "kube-eip.tar"), testRef); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = Unpack(layoutDir, filepath.Join(parent, strconv.Itoa(i)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Unpack %d: %v", i, err)
		}
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(errs) {
		t.Errorf("the parent holds %d entries, want %d and no temporary ones", len(entries), len(errs))
	}
}

func TestUnpackKeepsOtherFiles(t *testing.T) {
	img := build(t, BuildOptions{Binary: fakeBinary(t, "#!fake"), Created: commitTime})
	out := t.TempDir()
	layoutDir := filepath.Join(out, "oci")
	if _, err := Write(img, layoutDir, filepath.Join(out, "kube-eip.tar"), testRef); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	precious := filepath.Join(dest, "precious")
	if err := os.WriteFile(precious, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Unpack(layoutDir, dest); err == nil {
		t.Error("Unpack replaced a directory that held no unpacked image")
	}
	if _, err := os.Stat(precious); err != nil {
		t.Errorf("Unpack removed another file: %v", err)
	}
}

// craftedImage is an image whose one layer holds exactly hdrs, each
// regular file with the content "x".
func craftedImage(t *testing.T, hdrs ...tar.Header) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = 1
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestUnpackRefusesEscapes(t *testing.T) {
	reg := func(name string) tar.Header { return tar.Header{Typeflag: tar.TypeReg, Name: name} }
	symlink := func(name, target string) tar.Header {
		return tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target}
	}
	for _, tc := range []struct {
		name string
		hdrs []tar.Header
	}{
		{"dot-dot file", []tar.Header{reg("../escape")}},
		{"dot-dot inside a path", []tar.Header{reg("a/../../escape")}},
		{"relative symlink out", []tar.Header{symlink("link", "../escape")}},
		{"absolute symlink", []tar.Header{symlink("link", "/etc/passwd")}},
		{"symlink chain out", []tar.Header{symlink("a", "."), symlink("b", "a/.."), reg("b/escape")}},
		{"symlink chain out, dangling", []tar.Header{symlink("a", "."), symlink("b", "a/../escape")}},
		{"file below a symlink", []tar.Header{symlink("dir", "."), reg("dir/escape")}},
		{"hard link out", []tar.Header{{Typeflag: tar.TypeLink, Name: "link", Linkname: "../escape"}}},
		{"device", []tar.Header{{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}}},
		{"marker", []tar.Header{reg(marker)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			layoutDir := filepath.Join(out, "oci")
			if _, err := Write(craftedImage(t, tc.hdrs...), layoutDir, filepath.Join(out, "img.tar"), testRef); err != nil {
				t.Fatal(err)
			}
			parent := filepath.Join(t.TempDir(), "p")
			dest := filepath.Join(parent, "q", "rootfs")
			_, err := Unpack(layoutDir, dest)
			if err == nil {
				t.Fatal("Unpack accepted the image")
			}
			t.Log(err)
			if _, err := os.Lstat(dest); err == nil {
				t.Error("Unpack left a tree in dest")
			}
			_ = filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.Contains(d.Name(), "escape") {
					t.Errorf("Unpack wrote %s", p)
				}
				return nil
			})
			if entries, _ := os.ReadDir(filepath.Dir(dest)); len(entries) != 0 {
				t.Errorf("Unpack left %d entries beside dest", len(entries))
			}
		})
	}
}

func TestUnpackKeepsLinksInside(t *testing.T) {
	img := craftedImage(t,
		tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o555},
		tar.Header{Typeflag: tar.TypeReg, Name: "bin/tool", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/bin", Linkname: "../bin"},
		tar.Header{Typeflag: tar.TypeLink, Name: "bin/alias", Linkname: "bin/tool"},
	)
	out := t.TempDir()
	layoutDir := filepath.Join(out, "oci")
	if _, err := Write(img, layoutDir, filepath.Join(out, "img.tar"), testRef); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "rootfs")
	if _, err := Unpack(layoutDir, dest); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(dest, "usr/bin")); err != nil || target != "../bin" {
		t.Errorf("usr/bin -> %q, %v", target, err)
	}
	a, err := os.Stat(filepath.Join(dest, "bin/alias"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Stat(filepath.Join(dest, "usr/bin/tool"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, b) {
		t.Error("bin/alias is not a hard link of bin/tool")
	}
	if fi, err := os.Stat(filepath.Join(dest, "bin")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("bin: %v, %v; want mode 0555", fi, err)
	}

	// The read-only directory must not stop a later image replacing this one.
	if _, err := Write(build(t, BuildOptions{Binary: fakeBinary(t, "x")}), layoutDir, filepath.Join(out, "img.tar"), testRef); err != nil {
		t.Fatal(err)
	}
	if _, err := Unpack(layoutDir, dest); err != nil {
		t.Fatalf("Unpack over an unpack with a read-only directory: %v", err)
	}
}
