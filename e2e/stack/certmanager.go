package stack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/kube-eip/kube-eip/e2e/controlplane"
)

// CertManagerHarnessName is the binary hack/build-certmanager.sh builds into
// bin/: cert-manager's controllers and cainjector in one process (module
// e2e/certmanager, apart from ours because cert-manager pins older
// Kubernetes libraries).
const CertManagerHarnessName = "cert-manager-harness"

// CertManagerBinary finds the harness in the repository's bin/.
func CertManagerBinary() (string, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, "bin", CertManagerHarnessName)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s not found (run hack/build-certmanager.sh, or make tools): %w", bin, err)
	}
	return bin, nil
}

// CertManager is a running cert-manager: Issuers and ClusterIssuers of the
// SelfSigned and CA kinds, Certificates, the approver, and the cainjector,
// which fills the caBundle of webhook configurations, APIServices and CRDs
// annotated cert-manager.io/inject-ca-from. It has no webhook of its own,
// so cert-manager's resources are checked by their CRD schemas only.
type CertManager struct {
	child *controlplane.Child
}

// StartCertManager runs the harness bin against the API server of
// kubeconfig, which must be allowed to install CRDs, and waits until its
// CRDs are established and its informers synced. Its log is
// logDir/cert-manager.log.
func StartCertManager(ctx context.Context, bin, kubeconfig, logDir string) (*CertManager, error) {
	health, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--kubeconfig=" + kubeconfig, "--healthz-addr=" + health}
	child, err := controlplane.StartChild("cert-manager", bin, logDir, args, nil)
	if err != nil {
		return nil, fmt.Errorf("starting cert-manager: %w", err)
	}
	if err := waitOK(ctx, &http.Client{Timeout: 2 * time.Second}, "http://"+health+"/readyz", child); err != nil {
		child.Stop(5 * time.Second)
		return nil, fmt.Errorf("waiting for cert-manager: %w", err)
	}
	return &CertManager{child: child}, nil
}

// Stop stops cert-manager gracefully (SIGTERM). What it issued stays.
func (c *CertManager) Stop() {
	if c != nil {
		c.child.Stop(10 * time.Second)
	}
}

// Running reports whether the process is up.
func (c *CertManager) Running() bool { return c != nil && !c.child.Exited() }
