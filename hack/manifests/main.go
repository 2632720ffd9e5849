// Command manifests writes the manifests of deploy/ that are rendered from
// Go (make generate): the admission policies, and the install as pods
// (deploy/manifests/kube-eip.yaml, with deploy.Manifests' default
// parameters).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kube-eip/kube-eip/deploy"
)

func main() {
	files := []struct {
		path   string
		render func() ([]byte, error)
	}{
		{"deploy/admission-policies.yaml", func() ([]byte, error) { return deploy.AdmissionPolicyManifest(deploy.Namespace) }},
		{"deploy/manifests/kube-eip.yaml", func() ([]byte, error) { return deploy.ManifestYAML(deploy.Params{}) }},
	}
	for _, f := range files {
		if err := write(f.path, f.render); err != nil {
			fmt.Fprintln(os.Stderr, "manifests:", err)
			os.Exit(1)
		}
	}
}

func write(path string, render func() ([]byte, error)) error {
	data, err := render()
	if err != nil {
		return fmt.Errorf("rendering %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
