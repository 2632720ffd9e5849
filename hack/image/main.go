// Command image builds kube-eip's OCI image from a static binary without a
// container engine (make image): it writes <out>/oci, an OCI image layout,
// <out>/kube-eip.tar for docker load, and <out>/digest, and prints the
// digest. The Makefile passes the commit's version, revision and time, so
// rebuilding a commit reproduces its digest.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/kube-eip/kube-eip/e2e/image"
)

func main() {
	binary := flag.String("binary", "", "the static linux kube-eip binary (required)")
	out := flag.String("out", "bin/image", "the directory to write the image into")
	ref := flag.String("ref", "ghcr.io/kube-eip/kube-eip:dev", "the image's name and tag")
	version := flag.String("version", "", "the org.opencontainers.image.version label")
	revision := flag.String("revision", "", "the org.opencontainers.image.revision label: the commit")
	created := flag.Int64("created-unix", 0, "the commit time in Unix seconds, for every timestamp in the image")
	arch := flag.String("arch", runtime.GOARCH, "the GOARCH the binary was built for")
	flag.Parse()

	if err := run(*binary, *out, *ref, image.BuildOptions{
		Version:  *version,
		Revision: *revision,
		Created:  time.Unix(*created, 0),
		Arch:     *arch,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(binary, out, ref string, opts image.BuildOptions) error {
	if binary == "" {
		return fmt.Errorf("-binary is required")
	}
	opts.Binary = binary
	img, err := image.Build(opts)
	if err != nil {
		return fmt.Errorf("building the image: %w", err)
	}
	digest, err := image.Write(img, filepath.Join(out, "oci"), filepath.Join(out, "kube-eip.tar"), ref)
	if err != nil {
		return fmt.Errorf("writing the image: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "digest"), []byte(digest+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing the digest: %w", err)
	}
	fmt.Println(digest)
	return nil
}
