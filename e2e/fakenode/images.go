package fakenode

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	corev1 "k8s.io/api/core/v1"

	ociimage "github.com/kube-eip/kube-eip/e2e/image"
)

// imageRepository strips the tag and digest from an image reference:
// registry.example.com:5000/kube-eip:v1@sha256:… → registry.example.com:5000/kube-eip.
func imageRepository(image string) string {
	if at := strings.IndexByte(image, '@'); at >= 0 {
		image = image[:at]
	}
	slash := strings.LastIndexByte(image, '/')
	if colon := strings.LastIndexByte(image, ':'); colon > slash {
		image = image[:colon]
	}
	return image
}

// localBinary is the binary standing in for image, if it has one.
func (k *Kubelet) localBinary(image string) (string, bool) {
	if _, ok := k.opts.Images[imageRepository(image)]; ok {
		return "", false // the image itself runs
	}
	bin, ok := k.opts.LocalImages[imageRepository(image)]
	return bin, ok && bin != ""
}

// unpackedImage is an image of Options.Images, unpacked once per digest
// and shared, read-only, by every container that runs it.
type unpackedImage struct {
	root   string
	config ociimage.Config
}

// imageFor is the unpacked image a container of image runs, if the
// Kubelet has that image. The first container of an image waits for the
// unpack; an image rebuilt under the same name is unpacked again, into a
// directory of its own digest, so running containers keep their files.
func (k *Kubelet) imageFor(image string) (*unpackedImage, bool, error) {
	layout, ok := k.opts.Images[imageRepository(image)]
	if !ok || layout == "" {
		return nil, false, nil
	}
	digest, err := layoutDigest(layout)
	if err != nil {
		return nil, true, fmt.Errorf("reading image %s from %s: %w", image, layout, err)
	}
	k.imagesMu.Lock()
	defer k.imagesMu.Unlock()
	if img := k.images[digest]; img != nil {
		return img, true, nil
	}
	dest := filepath.Join(k.workDir, "images", strings.ReplaceAll(digest, ":", "-"))
	cfg, err := ociimage.Unpack(layout, dest)
	if err != nil {
		return nil, true, fmt.Errorf("unpacking image %s: %w", image, err)
	}
	img := &unpackedImage{root: dest, config: cfg}
	k.images[digest] = img
	return img, true, nil
}

// runnable tells whether a container runs for real rather than
// "starting" at once: one of an image of Options.Images, or an init
// container of one of LocalImages (which stand in for init containers
// only). Sidecars never run.
func (k *Kubelet) runnable(c *corev1.Container, init bool) bool {
	if isSidecar(c) {
		return false
	}
	if _, ok := k.opts.Images[imageRepository(c.Image)]; ok {
		return true
	}
	_, local := k.localBinary(c.Image)
	return local && init
}

// layoutDigest is the digest of the one image of an OCI layout, read from
// its index without touching the blobs.
func layoutDigest(dir string) (string, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return "", err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return "", err
	}
	if len(m.Manifests) != 1 {
		return "", fmt.Errorf("the layout holds %d images, not one", len(m.Manifests))
	}
	return m.Manifests[0].Digest.String(), nil
}
