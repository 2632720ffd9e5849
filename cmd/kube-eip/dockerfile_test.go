package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
