// Command manifests writes what make generate renders from Go into deploy/
// and the Helm chart: the admission policies of deploy/, the chart's CRDs
// (deploy/crds), roles (deploy/rbac) and admission configuration
// (webhook.Configuration, ValidatingConfiguration, AdmissionPolicies), and
// the plain manifests, which are the chart rendered by the pinned Helm
// (-helm).
//
// It runs from the repository's root.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/kube-eip/kube-eip/deploy"
)

func main() {
	helm := flag.String("helm", deploy.Helm4, "the Helm binary that renders deploy/manifests/kube-eip.yaml from the chart")
	flag.Parse()
	if err := run(*helm); err != nil {
		fmt.Fprintln(os.Stderr, "manifests:", err)
		os.Exit(1)
	}
}

func run(helm string) error {
	if _, err := os.Stat(helm); err != nil {
		return fmt.Errorf("no Helm to render the chart with (-helm): %w", err)
	}
	files := []struct {
		path   string
		render func() ([]byte, error)
	}{
		{"deploy/admission-policies.yaml", func() ([]byte, error) { return deploy.AdmissionPolicyManifest(deploy.Namespace) }},
		{filepath.Join(deploy.ChartDir, "files/admission.yaml"), deploy.ChartAdmission},
		{filepath.Join(deploy.ChartDir, "files/rbac.yaml"), deploy.ChartRBAC},
	}
	for _, f := range files {
		if err := write(f.path, f.render); err != nil {
			return err
		}
	}
	if err := writeCRDs(filepath.Join(deploy.ChartDir, "crds")); err != nil {
		return err
	}
	// Last: it renders the chart, generated files included.
	return write("deploy/manifests/kube-eip.yaml", func() ([]byte, error) { return deploy.PlainManifests(helm, ".") })
}

// writeCRDs makes dir hold deploy/crds' files, and only them: a CRD removed
// from the code goes from the chart too.
func writeCRDs(dir string) error {
	crds, err := deploy.ChartCRDs()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, ok := crds[e.Name()]; !ok {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(crds)) {
		errs = append(errs, writeIfChanged(filepath.Join(dir, name), crds[name]))
	}
	return errors.Join(errs...)
}

func write(path string, render func() ([]byte, error)) error {
	data, err := render()
	if err != nil {
		return fmt.Errorf("rendering %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeIfChanged(path, data)
}

// writeIfChanged leaves a file that is current alone, so that its time
// stamp says when it last changed.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return os.WriteFile(path, data, 0o644)
}
