package image

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Write stores img twice: as an OCI image layout at layoutDir, which
// skopeo, crane, containerd and Unpack read, and as a tarball at
// tarballPath that `docker load` and `kind load image-archive` take. ref
// (such as ghcr.io/kube-eip/kube-eip:dev) names the image in both. It
// returns the manifest digest.
//
// Both are written beside their final path and renamed into place, so an
// interrupted build leaves the previous image rather than half of one, and
// the layout holds exactly one image rather than every image ever built.
func Write(img v1.Image, layoutDir, tarballPath, ref string) (string, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("parsing the image reference %q: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("computing the image digest: %w", err)
	}
	if err := writeLayout(img, layoutDir, tag); err != nil {
		return "", err
	}
	if err := writeTarball(img, tarballPath, tag); err != nil {
		return "", err
	}
	return digest.String(), nil
}

func writeLayout(img v1.Image, dir string, tag name.Tag) error {
	tmp, err := tempBeside(dir)
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return fmt.Errorf("starting the OCI layout: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading the image config: %w", err)
	}
	err = p.AppendImage(img,
		layout.WithAnnotations(map[string]string{
			// The OCI spec's name for the image within the layout is the
			// tag; containerd's import takes the full name from its own key.
			"org.opencontainers.image.ref.name": tag.TagStr(),
			"io.containerd.image.name":          tag.Name(),
		}),
		layout.WithPlatform(v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture}),
	)
	if err != nil {
		return fmt.Errorf("writing the image into the OCI layout: %w", err)
	}
	if err := readable(tmp); err != nil {
		return fmt.Errorf("making the OCI layout readable: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing the previous OCI layout: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("moving the OCI layout into place: %w", err)
	}
	return nil
}

// readable makes every file under dir 0644: ggcr writes layer blobs 0600
// through a temporary file, but the layout is meant for other tools,
// perhaps run as other users, to read.
func readable(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		return root.Chmod(p, 0o644)
	})
}

func writeTarball(img v1.Image, path string, tag name.Tag) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the tarball's directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing the image tarball: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("moving the image tarball into place: %w", err)
	}
	return nil
}

// tempBeside makes an empty directory next to path, on the same file
// system, so that it can be renamed to path. Its name is unique, so
// concurrent callers never share one.
func tempBeside(path string) (string, error) {
	parent := filepath.Dir(path)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("creating a directory beside %s: %w", path, err)
	}
	// MkdirTemp's 0700 would carry over to path.
	if err := os.Chmod(tmp, 0o755); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("making %s readable: %w", tmp, err)
	}
	return tmp, nil
}
