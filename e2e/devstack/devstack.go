// Package devstack runs kube-eip's local development stack (make dev) in one
// supervisor process: the control plane, the EC2 emulator and fake nodes (the
// webhook and binder join as they arrive), with its state under one
// directory so that a restart resumes the same cluster and the same EC2.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/kube-eip/kube-eip/e2e/controlplane"
	"github.com/kube-eip/kube-eip/e2e/ec2sim"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// Options configures the dev stack.
type Options struct {
	// Dir is the state directory, .dev at the repository root by default.
	Dir string
	// BinDir holds the control-plane binaries (bin/ by default).
	BinDir string
	// Nodes is the number of fake nodes; 0 means 3.
	Nodes int
	// ImageLayout is the OCI layout of the kube-eip image whose pods run
	// the webhook, the binder and the injected wait container; empty means
	// BinDir/image/oci (make image) when it exists, else one is built.
	ImageLayout string
	// EIPQuota is the emulator's Elastic IP quota; 0 means DefaultEIPQuota.
	EIPQuota int
	// CNI tunes the fake VPC CNI's warm pool: how long a deleted pod's IP
	// cools on its node's ENI (keeping any Elastic IP on it) before the
	// next pod gets it, and how many free IPs each ENI keeps.
	CNI fakenode.CNIOptions
	// Log receives progress messages and the components' logs.
	Log logr.Logger
}

// DefaultEIPQuota is the dev stack's Elastic IP quota: AWS's default of 5
// per region is too tight to try a Deployment, and a local stack costs
// nothing per address.
const DefaultEIPQuota = 50

// Files the stack writes into Dir for users and for hack/dev.sh.
const (
	KubeconfigFile = "kubeconfig"
	EnvFile        = "env"
	PIDFile        = "devstack.pid"
	ReadyFile      = "ready"
)

// Run starts the stack, writes the user's files, and blocks until ctx ends
// or a component dies; it stops everything before returning.
func Run(ctx context.Context, opts Options) error {
	log := opts.Log
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	ready := filepath.Join(dir, ReadyFile)
	_ = os.Remove(ready)
	if err := os.WriteFile(filepath.Join(dir, PIDFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing pid file: %w", err)
	}
	defer func() { _ = os.Remove(filepath.Join(dir, PIDFile)) }()

	if opts.ImageLayout == "" {
		opts.ImageLayout = defaultImageLayout(opts.BinDir)
	}
	start := time.Now()
	log.Info("starting the dev stack", "dir", dir, "image", opts.ImageLayout)
	if opts.EIPQuota == 0 {
		opts.EIPQuota = DefaultEIPQuota
	}
	s, err := stack.Start(ctx, stack.Options{
		Dir: dir, BinDir: opts.BinDir, Nodes: opts.Nodes, Pods: true, ImageLayout: opts.ImageLayout, Log: log,
		EC2: ec2sim.Options{EIPQuota: opts.EIPQuota}, CNI: opts.CNI,
	})
	if err != nil {
		return err
	}
	defer func() {
		_ = os.Remove(ready)
		log.Info("stopping the dev stack")
		if err := s.Stop(); err != nil {
			log.Error(err, "stopping the dev stack")
		}
	}()
	log.Info("dev stack ready", "apiserver", s.ControlPlane.APIServerURL, "ec2", s.EC2.URL, "kube-eip", s.Product.Namespace,
		"nodes", s.Nodes.NodeNames(), "took", time.Since(start).Round(time.Millisecond))

	if err := writeUserFiles(dir, s, opts.BinDir); err != nil {
		return err
	}
	if err := os.WriteFile(ready, []byte(s.ControlPlane.APIServerURL+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing ready file: %w", err)
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			// kube-eip's own pods are their Deployments' business.
			if !s.Running() {
				return errors.New("a control-plane component exited; see " + s.ControlPlane.LogDir)
			}
		}
	}
}

// writeUserFiles writes .dev/kubeconfig and .dev/env, the files a user
// points kubectl at or sources into a shell.
func writeUserFiles(dir string, s *stack.Stack, binDir string) error {
	data, err := os.ReadFile(s.ControlPlane.KubeconfigPath)
	if err != nil {
		return fmt.Errorf("reading admin kubeconfig: %w", err)
	}
	kubeconfig := filepath.Join(dir, KubeconfigFile)
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", kubeconfig, err)
	}
	if binDir == "" {
		root, err := controlplane.RepoRoot()
		if err != nil {
			return err
		}
		binDir = filepath.Join(root, "bin")
	}
	if binDir, err = filepath.Abs(binDir); err != nil {
		return err
	}
	var env strings.Builder
	fmt.Fprintf(&env, "# Source this file to talk to the kube-eip dev stack: . %s\n", filepath.Join(dir, EnvFile))
	fmt.Fprintf(&env, "export KUBECONFIG=%q\n", kubeconfig)
	fmt.Fprintf(&env, "export PATH=%q:\"$PATH\"\n", binDir)
	env.WriteString("# The AWS SDK and CLI reach the EC2 emulator with these.\n")
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&env, "export %s=%q\n", k, v)
	}
	if err := os.WriteFile(filepath.Join(dir, EnvFile), []byte(env.String()), 0o644); err != nil {
		return fmt.Errorf("writing env file: %w", err)
	}
	return nil
}

func defaultImageLayout(binDir string) string {
	if binDir == "" {
		root, err := controlplane.RepoRoot()
		if err != nil {
			return ""
		}
		binDir = filepath.Join(root, "bin")
	}
	layout := filepath.Join(binDir, "image", "oci")
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		return ""
	}
	return layout
}
