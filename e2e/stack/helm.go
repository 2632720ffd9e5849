package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kube-eip/kube-eip/e2e/controlplane"
)

// Release is the Helm release DeployProduct installs.
const Release = "kube-eip"

// helmBinaries are what make helm links to the pinned versions.
const (
	helmBinary  = "helm"
	helm3Binary = "helm3"
)

// HelmBinary is the path of the pinned Helm 4 (make helm); helm3 picks
// Helm 3 instead.
func (s *Stack) HelmBinary(helm3 bool) (string, error) {
	name := helmBinary
	if helm3 {
		name = helm3Binary
	}
	dir := s.opts.BinDir
	if dir == "" {
		root, err := controlplane.RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no %s in %s: run make helm (make tools builds it too): %w", name, dir, err)
	}
	return path, nil
}

// ChartPath is the kube-eip chart in this repository.
func ChartPath() (string, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "charts", "kube-eip"), nil
}

// Helm runs the pinned Helm 4 with args against the stack's cluster, its
// caches and configuration under the stack's directory so that nothing
// outside it is read or written. It returns stdout and stderr; err says
// what failed with stderr in it.
func (s *Stack) Helm(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return s.runHelm(ctx, false, args...)
}

// Helm3 is Helm with the pinned Helm 3.
func (s *Stack) Helm3(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return s.runHelm(ctx, true, args...)
}

func (s *Stack) runHelm(ctx context.Context, helm3 bool, args ...string) (string, string, error) {
	bin, err := s.HelmBinary(helm3)
	if err != nil {
		return "", "", err
	}
	home := filepath.Join(s.dir, "helm")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+s.ControlPlane.KubeconfigPath,
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"HELM_DRIVER=secret",
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), errOut.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), errOut.String(), nil
}

// writeValues writes values as a values file for Helm (JSON is YAML) in
// the stack's directory and returns its path.
func (s *Stack) writeValues(name string, values map[string]any) (string, error) {
	data, err := json.MarshalIndent(values, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.dir, "helm", name+".values.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, data, 0o644)
}
