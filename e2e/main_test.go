// Package e2e holds kube-eip's end-to-end suite: each test tells one user
// story against a real control plane started from source for the package.
package e2e

import (
	"os"
	"testing"

	"k8s.io/client-go/kubernetes"

	"github.com/kube-eip/kube-eip/e2e/controlplane"
)

var (
	cluster *controlplane.ControlPlane
	kube    kubernetes.Interface
)

func TestMain(m *testing.M) {
	os.Exit(controlplane.RunTests(m, controlplane.Options{}, func(cp *controlplane.ControlPlane) error {
		cluster = cp
		var err error
		kube, err = kubernetes.NewForConfig(cp.RESTConfig())
		return err
	}))
}
