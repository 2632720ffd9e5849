package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAPIConfigAsksForNoCompression(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	const doc = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(kubeconfig, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	cfg, err := apiConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" {
		t.Errorf("host %q: the kubeconfig was not read", cfg.Host)
	}
	if !cfg.DisableCompression {
		t.Error("compression is on: the API server would gzip every watch event for the webhook and the binder")
	}
}
