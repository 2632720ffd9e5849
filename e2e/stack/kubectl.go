package stack

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kubectl runs the control plane's kubectl as the admin, with stdin as its
// input (`apply -f -` reads it), and returns what it printed to stdout and
// to stderr, where it writes errors and the API server's warnings
// ("Warning: ..."), as a user's terminal would show them. A kubectl that
// exits non-zero returns an error holding both.
func (s *Stack) Kubectl(ctx context.Context, stdin string, args ...string) (stdout, stderr string, err error) {
	cp := s.ControlPlane
	full := append([]string{"--kubeconfig=" + cp.KubeconfigPath, "--cache-dir=" + filepath.Join(s.dir, "kubectl-cache")}, args...)
	cmd := exec.CommandContext(ctx, cp.Kubectl, full...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// Nothing of the caller's environment: no user's kubeconfig, proxy or
	// terminal settings change what kubectl prints.
	cmd.Env = []string{"HOME=" + s.dir, "PATH=/usr/bin:/bin"}
	if err := cmd.Run(); err != nil {
		return out.String(), errOut.String(), fmt.Errorf("kubectl %s: %w\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), errOut.String(), nil
}
