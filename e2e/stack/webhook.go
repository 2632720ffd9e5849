package stack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/e2e/controlplane"
	"github.com/kube-eip/kube-eip/e2e/image"
	"github.com/kube-eip/kube-eip/webhook"
)

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port for the webhook: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

// make test builds kube-eip once, before the suites, and names the builds
// in these variables: the suites run two at a time, and each building its
// own would compile the same packages side by side (minutes, cold).
// Without them every suite builds what it runs.
const (
	// BinaryEnv names a kube-eip binary built as the suites are (-race
	// under the race detector), which BuildKubeEIP returns.
	BinaryEnv = "KUBE_EIP_E2E_BINARY"
	// ImageLayoutEnv names an OCI layout of the image as make image writes
	// it, which BuildImage returns.
	ImageLayoutEnv = "KUBE_EIP_E2E_IMAGE"
)

// BuildKubeEIP builds kube-eip's binary from this repository into dir,
// or returns the one BinaryEnv names.
func BuildKubeEIP(ctx context.Context, dir string) (string, error) {
	if bin := os.Getenv(BinaryEnv); bin != "" {
		return bin, nil
	}
	var flags []string
	if raceEnabled {
		flags = append(flags, "-race")
	}
	return goBuildKubeEIP(ctx, filepath.Join(dir, "kube-eip"), nil, flags...)
}

// goBuildKubeEIP runs go build of cmd/kube-eip at the repository's root.
func goBuildKubeEIP(ctx context.Context, bin string, env []string, flags ...string) (string, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return "", err
	}
	args := append(append([]string{"build", "-o", bin}, flags...), "./cmd/kube-eip")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building kube-eip: %w\n%s", err, out)
	}
	return bin, nil
}

// BuildImage builds the kube-eip image from this repository, as make image
// does, into an OCI layout under dir, and returns the layout's path, or
// returns the layout ImageLayoutEnv names. The binary is static and never
// race-enabled: the image has no libc.
func BuildImage(ctx context.Context, dir string) (string, error) {
	if layout := os.Getenv(ImageLayoutEnv); layout != "" {
		return layout, nil
	}
	bin, err := goBuildKubeEIP(ctx, filepath.Join(dir, "kube-eip"), []string{"CGO_ENABLED=0"}, "-trimpath")
	if err != nil {
		return "", err
	}
	img, err := image.Build(image.BuildOptions{Binary: bin, Version: "dev"})
	if err != nil {
		return "", err
	}
	layout := filepath.Join(dir, "oci")
	if _, err := image.Write(img, layout, filepath.Join(dir, "kube-eip.tar"), Image); err != nil {
		return "", err
	}
	return layout, nil
}

// Image is the kube-eip image the stack's webhook injects. The fake nodes
// run it from its OCI layout (Options.Pods), or else run the local kube-eip
// binary for its wait container.
const Image = "ghcr.io/kube-eip/kube-eip:dev"

// WebhookConfigurationName is the MutatingWebhookConfiguration the stack
// registers.
const WebhookConfigurationName = "kube-eip"

// startWebhook runs `kube-eip webhook` on loopback with a serving
// certificate of a fresh CA, waits until it is ready, and registers it with
// the API server by URL.
func (s *Stack) startWebhook(ctx context.Context, opts Options) error {
	dir := filepath.Join(s.dir, "webhook")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := certs.NewCA("kube-eip-local-webhook-ca")
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, 365*24*time.Hour)
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}

	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	args := []string{"webhook",
		"--listen=" + addr,
		"--tls-cert-file=" + certFile,
		"--tls-key-file=" + keyFile,
		"--wait-image=" + Image,
		"--leader-elect=false",
		"--namespace=" + Namespace,
	}
	args = append(args, webhookTuning(opts)...)
	url := "https://" + addr
	if s.webhookClient, err = trusting(ca.CertPEM()); err != nil {
		return err
	}
	// The real binary, as a pod would run it: its own process, flags and
	// kubeconfig, so the end-to-end tests cover the command line too.
	s.runWebhook = func(ctx context.Context) error {
		child, err := controlplane.StartChild("kube-eip-webhook", opts.KubeEIPBinary, s.ControlPlane.LogDir, args,
			[]string{"KUBECONFIG=" + s.kubeconfigs["webhook"]})
		if err != nil {
			return fmt.Errorf("starting the webhook: %w", err)
		}
		s.webhook = child
		return waitReady(ctx, url+"/readyz", s.webhookClient, child)
	}
	if err := s.runWebhook(ctx); err != nil {
		return err
	}
	s.WebhookURL = url

	reg := webhook.Registration{Name: WebhookConfigurationName, URL: url, CABundle: ca.CertPEM(), OwnNamespace: Namespace,
		Exempt: []string{Identities.Webhook, Identities.Binder}}
	if err := ensure(ctx, webhook.Configuration(reg), s.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations()); err != nil {
		return fmt.Errorf("registering the webhook: %w", err)
	}
	if err := ensure(ctx, webhook.ValidatingConfiguration(reg), s.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations()); err != nil {
		return fmt.Errorf("registering the EIPPool and workload webhooks: %w", err)
	}
	return nil
}

// StopWebhook stops the webhook process, as an outage would; the API
// server's calls to it fail from then on.
func (s *Stack) StopWebhook() {
	if s.webhook != nil {
		s.webhook.Stop(10 * time.Second)
	}
}

// StartWebhook starts the webhook again, on the same address and
// certificate, and waits until it is ready.
func (s *Stack) StartWebhook(ctx context.Context) error {
	if s.webhook != nil && !s.webhook.Exited() {
		return errors.New("the webhook is already running")
	}
	return s.runWebhook(ctx)
}

// trusting is an HTTPS client that trusts only caPEM.
func trusting(caPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("parsing the webhook CA")
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

func waitReady(ctx context.Context, url string, client *http.Client, child *controlplane.Child) error {
	if err := waitOK(ctx, client, url, child); err != nil {
		return fmt.Errorf("waiting for the webhook: %w", err)
	}
	return nil
}

// waitOK polls url until it answers 200, failing early if child exits.
func waitOK(ctx context.Context, client *http.Client, url string, child *controlplane.Child) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if child.Exited() {
			return false, child.ExitError()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		_ = resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("%s (last: %s): %w", url, last, err)
	}
	return nil
}
