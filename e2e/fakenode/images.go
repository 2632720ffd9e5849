package fakenode

import "strings"

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
	bin, ok := k.opts.LocalImages[imageRepository(image)]
	return bin, ok && bin != ""
}
