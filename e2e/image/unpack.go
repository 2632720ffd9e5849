package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Config is what the test harness needs of an image's config to run its
// binary the way a container runtime would.
type Config struct {
	// Digest is the manifest digest, as Write returns it.
	Digest     string
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string
	WorkingDir string
}

// marker is written into dest after everything else, holding the digest:
// its presence means dest is a complete unpack of that image.
const marker = ".kube-eip-unpacked"

// Unpack extracts the filesystem of the one image in the OCI layout at
// layoutDir into dest and returns its config. If dest already holds a
// complete unpack of the same image it is left alone, so callers may
// unpack on every run. dest must be empty, absent or an earlier unpack:
// Unpack refuses to replace anything else.
//
// The image is extracted into a fresh directory beside dest and renamed
// into place, so callers unpacking into different directories never see
// each other's work, and an interrupted unpack leaves no half tree in dest.
//
// Since the harness runs what it unpacks outside any container, nothing in
// the image may reach outside dest: Unpack fails on entries named with
// "..", on absolute symlinks (they would point into the host), on links
// whose targets leave dest, on entries below a symlink, and on devices and
// fifos. Setuid and setgid bits are dropped; other modes are kept.
func Unpack(layoutDir, dest string) (Config, error) {
	img, err := readLayout(layoutDir)
	if err != nil {
		return Config{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return Config{}, fmt.Errorf("computing the image digest: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Config{}, fmt.Errorf("reading the image config: %w", err)
	}
	cfg := Config{
		Digest:     digest.String(),
		Entrypoint: cf.Config.Entrypoint,
		Cmd:        cf.Config.Cmd,
		Env:        cf.Config.Env,
		User:       cf.Config.User,
		WorkingDir: cf.Config.WorkingDir,
	}
	if unpacked(dest) == cfg.Digest {
		return cfg, nil
	}

	// mutate.Extract skips links that escape instead of failing; check
	// every layer first so that a hostile image is refused, not trimmed.
	if err := checkLayers(img); err != nil {
		return Config{}, err
	}
	tmp, err := tempBeside(dest)
	if err != nil {
		return Config{}, err
	}
	defer func() { _ = removeAll(tmp) }()
	if err := extract(img, tmp); err != nil {
		return Config{}, fmt.Errorf("unpacking %s: %w", cfg.Digest, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, marker), []byte(cfg.Digest), 0o444); err != nil {
		return Config{}, fmt.Errorf("marking the unpack complete: %w", err)
	}
	if err := replace(dest, tmp); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// readLayout returns the single image of an OCI layout, as Write makes it.
func readLayout(dir string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the OCI layout %s: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the index of %s: %w", dir, err)
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("the OCI layout %s holds %d manifests, want exactly one image", dir, len(m.Manifests))
	}
	desc := m.Manifests[0]
	if !desc.MediaType.IsImage() {
		return nil, fmt.Errorf("the OCI layout %s holds a %s, want an image manifest", dir, desc.MediaType)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading image %s from %s: %w", desc.Digest, dir, err)
	}
	return img, nil
}

// unpacked returns the digest of the image unpacked in dir, or "".
func unpacked(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, marker))
	if err != nil {
		return ""
	}
	return string(data)
}

// replace moves the finished unpack tmp to dest, removing an earlier
// unpack there but nothing else.
func replace(dest, tmp string) error {
	entries, err := os.ReadDir(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading %s: %w", dest, err)
	case len(entries) > 0 && unpacked(dest) == "":
		return fmt.Errorf("%s holds files but no unpacked image; refusing to replace it", dest)
	default:
		if err := removeAll(dest); err != nil {
			return fmt.Errorf("removing the earlier unpack in %s: %w", dest, err)
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("moving the unpacked image to %s: %w", dest, err)
	}
	return nil
}

// removeAll is os.RemoveAll for trees with read-only directories, which
// images have and which would refuse to give up their entries.
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	// Through an os.Root, so that a directory swapped for a symlink
	// meanwhile cannot make the chmod land outside dir.
	if root, err := os.OpenRoot(dir); err == nil {
		_ = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = root.Chmod(p, 0o700)
			}
			return nil
		})
		_ = root.Close()
	}
	return os.RemoveAll(dir)
}

// checkLayers checks every entry of every layer as extract would, before
// any of them is written.
func checkLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("listing the image's layers: %w", err)
	}
	for i, l := range layers {
		if err := checkLayer(l); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return nil
}

func checkLayer(l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("reading the layer: %w", err)
	}
	defer func() { _ = rc.Close() }()
	// mutate.Extract also drops what lies below a symlink of the same
	// layer; refuse that too.
	symlinks := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the layer's tar: %w", err)
		}
		name, err := checkEntry(hdr)
		if err != nil {
			return err
		}
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if symlinks[dir] {
				return fmt.Errorf("%s lies below the symlink %s", hdr.Name, dir)
			}
		}
		if hdr.Typeflag == tar.TypeSymlink {
			symlinks[name] = true
		}
	}
}

// checkEntry returns hdr's name relative to the root, or why the entry
// may not be unpacked. Link targets are checked as written; what they
// resolve to through other symlinks is checked once the tree is complete.
func checkEntry(hdr *tar.Header) (string, error) {
	name, err := localName(hdr.Name)
	if err != nil {
		return "", err
	}
	if name == marker {
		return "", fmt.Errorf("the image contains %s, which Unpack writes itself", marker)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return name, nil
	case tar.TypeReg:
	case tar.TypeSymlink:
		if path.IsAbs(hdr.Linkname) {
			return "", fmt.Errorf("symlink %s points to the absolute path %s, which is outside the unpacked tree", hdr.Name, hdr.Linkname)
		}
		if !filepath.IsLocal(path.Join(path.Dir(name), hdr.Linkname)) { //nolint:gosec // G305: joined only to check, not to write
			return "", fmt.Errorf("symlink %s points to %s, outside the unpacked tree", hdr.Name, hdr.Linkname)
		}
	case tar.TypeLink:
		if _, err := localName(hdr.Linkname); err != nil {
			return "", fmt.Errorf("hard link %s: %w", hdr.Name, err)
		}
	default:
		return "", fmt.Errorf("%s is of tar type %q, which Unpack does not support", hdr.Name, hdr.Typeflag)
	}
	if name == "." {
		return "", fmt.Errorf("the root of the image is not a directory")
	}
	return name, nil
}

// localName turns a tar name into a path relative to the root. Leading
// slashes are dropped, as tar does; ".." is refused anywhere, even where
// it would stay inside, since no image needs it.
func localName(name string) (string, error) {
	rel := strings.TrimLeft(name, "/")
	if rel == "" {
		rel = "."
	}
	for _, elem := range strings.Split(rel, "/") {
		if elem == ".." {
			return "", fmt.Errorf("path %q leaves the unpacked tree", name)
		}
	}
	clean := path.Clean(rel)
	if !filepath.IsLocal(clean) {
		return "", fmt.Errorf("path %q is not local to the unpacked tree", name)
	}
	return clean, nil
}

// extract writes img's flattened filesystem under dir. Every write goes
// through an os.Root, which refuses to follow a symlink out of dir.
func extract(img v1.Image, dir string) (err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer func() { _ = root.Close() }()
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()

	type dirMode struct {
		name string
		mode fs.FileMode
	}
	// Directories get their modes last, since a read-only one could not
	// take its entries; hard links are made last, since a flattened
	// image may list a link before its target.
	var dirs []dirMode
	var links, symlinks []*tar.Header
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the image's filesystem: %w", err)
		}
		name, err := checkEntry(hdr)
		if err != nil {
			return err
		}
		if err := noSymlinkAbove(root, name); err != nil {
			return err
		}
		mode := hdr.FileInfo().Mode()
		mode = mode.Perm() | mode&fs.ModeSticky
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o700); err != nil {
				return fmt.Errorf("creating directory %s: %w", name, err)
			}
			dirs = append(dirs, dirMode{name, mode})
		case tar.TypeReg:
			if err := writeFile(root, name, mode, tr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := mkParent(root, name); err != nil {
				return err
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("creating symlink %s: %w", name, err)
			}
			symlinks = append(symlinks, hdr)
		case tar.TypeLink:
			links = append(links, hdr)
		}
	}

	for _, hdr := range links {
		if err := hardLink(root, hdr); err != nil {
			return err
		}
	}
	// Each symlink was checked as written, but one that goes through
	// another (a -> ., b -> a/..) can still lead out; os.Root resolves
	// them the way the kernel will and says so. A dangling one is harmless.
	for _, hdr := range symlinks {
		name, _ := localName(hdr.Name)
		if _, err := root.Stat(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("symlink %s -> %s does not resolve inside the unpacked tree: %w", hdr.Name, hdr.Linkname, err)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i].name, dirs[i].mode); err != nil {
			return fmt.Errorf("setting the mode of %s: %w", dirs[i].name, err)
		}
	}
	return nil
}

// noSymlinkAbove fails if a directory above name is a symlink: writing
// through one would put the entry somewhere other than its name says,
// which defeats the checks on names and link targets.
func noSymlinkAbove(root *os.Root, name string) error {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		fi, err := root.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking %s: %w", dir, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s lies below the symlink %s", name, dir)
		}
	}
	return nil
}

func mkParent(root *os.Root, name string) error {
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", name, err)
	}
	return nil
}

func writeFile(root *os.Root, name string, mode fs.FileMode, r io.Reader) error {
	if err := mkParent(root, name); err != nil {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := root.Chmod(name, mode); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", name, err)
	}
	return nil
}

// hardLink links hdr's name to its target, which must be a regular file
// already unpacked and not reached through a symlink.
func hardLink(root *os.Root, hdr *tar.Header) error {
	name, _ := localName(hdr.Name)
	target, _ := localName(hdr.Linkname)
	if err := noSymlinkAbove(root, target); err != nil {
		return fmt.Errorf("hard link %s: %w", name, err)
	}
	fi, err := root.Lstat(target)
	if err != nil {
		return fmt.Errorf("hard link %s: its target: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("hard link %s points to %s, which is not a regular file", name, target)
	}
	if err := mkParent(root, name); err != nil {
		return err
	}
	if err := root.Link(target, name); err != nil {
		return fmt.Errorf("creating hard link %s: %w", name, err)
	}
	return nil
}
