package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kube-eip/kube-eip/e2e/image"
)

// The image cannot be built on a machine without a container engine, so
// this checks what its build needs: every package of this module that the
// binary imports lies under a directory the Dockerfile copies.
func TestDockerfileCopiesEveryPackageTheBinaryImports(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var copied []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "COPY" && strings.HasSuffix(fields[1], "/") {
			copied = append(copied, fields[1])
		}
	}

	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		rel = filepath.ToSlash(rel) + "/"
		found := false
		for _, c := range copied {
			if strings.HasPrefix(rel, c) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("the binary imports %s, which the Dockerfile does not copy (copied: %v)", rel, copied)
		}
	}
}

// The image has two recipes: the Dockerfile, and e2e/image, which make
// image and the end-to-end tests use. This checks that they run the binary
// the same way: as the same non-root user, through the same entrypoint.
func TestDockerfileAgreesWithTheImageBuilder(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Only the final stage ends up in the image.
	var user, entrypoint string
	for line := range strings.Lines(string(data)) {
		keyword, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(keyword) {
		case "FROM":
			user, entrypoint = "", ""
		case "USER":
			user = strings.TrimSpace(rest)
		case "ENTRYPOINT":
			entrypoint = strings.TrimSpace(rest)
		}
	}
	var dockerEntrypoint []string
	if err := json.Unmarshal([]byte(entrypoint), &dockerEntrypoint); err != nil {
		t.Fatalf("the final stage's ENTRYPOINT %q is not in exec (JSON) form: %v", entrypoint, err)
	}

	binary := filepath.Join(t.TempDir(), "kube-eip")
	if err := os.WriteFile(binary, []byte("not a real binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := image.Build(image.BuildOptions{Binary: binary})
	if err != nil {
		t.Fatalf("building the image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if user != image.User || cf.Config.User != image.User {
		t.Errorf("the Dockerfile runs as USER %q, e2e/image as %q; both should be %q", user, cf.Config.User, image.User)
	}
	want := []string{image.Entrypoint}
	if !slices.Equal(dockerEntrypoint, want) || !slices.Equal(cf.Config.Entrypoint, want) {
		t.Errorf("the Dockerfile's ENTRYPOINT is %q, e2e/image's %q; both should be %q", dockerEntrypoint, cf.Config.Entrypoint, want)
	}
}
