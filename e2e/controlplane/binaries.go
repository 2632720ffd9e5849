package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

const modulePath = "github.com/kube-eip/kube-eip"

// resolveBinDir finds the directory of the control-plane binaries.
func resolveBinDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("KUBE_EIP_BIN_DIR")
	}
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}
	for _, name := range []string{etcdName, apiServerName, controllerManagerName, schedulerName, KubectlName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("control-plane binary %s not found in %s (run `make tools` to build it): %w", name, dir, err)
		}
	}
	return dir, nil
}

// RepoRoot walks up from the working directory to this repository's root,
// the directory whose go.mod declares the kube-eip module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the kube-eip repository (no go.mod declaring " + modulePath + ")")
		}
		dir = parent
	}
}
