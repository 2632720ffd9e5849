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
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/webhook"
)

// Image is the kube-eip image the stack's webhook injects; the fake nodes
// run the local kube-eip binary for it.
const Image = "ghcr.io/kube-eip/kube-eip:dev"

// WebhookConfigurationName is the MutatingWebhookConfiguration the stack
// registers.
const WebhookConfigurationName = "kube-eip"

// startWebhook runs the webhook in this process on loopback with a serving
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

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w, err := webhook.Start(runCtx, webhook.Options{
		Config:   s.ControlPlane.RESTConfig(),
		Addr:     "127.0.0.1:0",
		Certs:    certs.NewFileSource(certFile, keyFile, opts.Log.WithName("certs")),
		Inject:   webhook.InjectConfig{Image: Image, WaitTimeout: opts.WaitTimeout},
		ClaimTTL: opts.ClaimTTL,
		Log:      opts.Log.WithName("webhook"),
	})
	if err != nil {
		cancel()
		return fmt.Errorf("starting the webhook: %w", err)
	}
	s.stopWebhook = func() error {
		cancel()
		return w.Wait()
	}
	url := "https://" + w.Addr()
	if err := waitReady(ctx, url+"/readyz", ca.CertPEM()); err != nil {
		return err
	}
	s.WebhookURL = url

	cfg := webhook.Configuration(webhook.Registration{Name: WebhookConfigurationName, URL: url, CABundle: ca.CertPEM(), OwnNamespace: "kube-eip-system"})
	hooks := s.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	existing, err := hooks.Get(ctx, cfg.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = hooks.Create(ctx, cfg, metav1.CreateOptions{})
	case err == nil:
		cfg.ResourceVersion = existing.ResourceVersion
		_, err = hooks.Update(ctx, cfg, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("registering the webhook: %w", err)
	}
	return nil
}

func waitReady(ctx context.Context, url string, caPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("parsing the webhook CA")
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
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
		return fmt.Errorf("waiting for the webhook at %s to be ready (last: %s): %w", url, last, err)
	}
	return nil
}
