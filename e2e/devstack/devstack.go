// Package devstack runs kube-eip's local development stack in one supervisor
// process: the control plane (and, as they arrive, the EC2 emulator, fake
// nodes, webhook and binder), with its state under one directory so that a
// restart resumes the same cluster.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-logr/logr"

	"github.com/kube-eip/kube-eip/e2e/controlplane"
)

// Options configures the dev stack.
type Options struct {
	// Dir is the state directory, .dev at the repository root by default.
	Dir string
	// BinDir holds the control-plane binaries (bin/ by default).
	BinDir string
	// Log receives progress messages.
	Log logr.Logger
}

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

	start := time.Now()
	log := opts.Log
	log.Info("starting control plane", "dir", filepath.Join(dir, "cluster"))
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: filepath.Join(dir, "cluster"), BinDir: opts.BinDir})
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		_ = os.Remove(ready)
		log.Info("stopping control plane")
		_ = cp.Stop()
	}()
	log.Info("control plane ready", "url", cp.APIServerURL, "took", time.Since(start).Round(time.Millisecond))

	if err := writeUserFiles(dir, cp.KubeconfigPath, opts.BinDir); err != nil {
		return err
	}
	if err := os.WriteFile(ready, []byte(cp.APIServerURL+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing ready file: %w", err)
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if !cp.Running() {
				return errors.New("a control-plane component exited; see " + cp.LogDir)
			}
		}
	}
}

// writeUserFiles writes .dev/kubeconfig and .dev/env, the files a user
// points kubectl at or sources into a shell.
func writeUserFiles(dir, adminKubeconfig, binDir string) error {
	data, err := os.ReadFile(adminKubeconfig)
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
	binDir, err = filepath.Abs(binDir)
	if err != nil {
		return err
	}
	env := fmt.Sprintf("# Source this file to talk to the kube-eip dev stack: . %s\nexport KUBECONFIG=%q\nexport PATH=%q:\"$PATH\"\n",
		filepath.Join(dir, EnvFile), kubeconfig, binDir)
	if err := os.WriteFile(filepath.Join(dir, EnvFile), []byte(env), 0o644); err != nil {
		return fmt.Errorf("writing env file: %w", err)
	}
	return nil
}
