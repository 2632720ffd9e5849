package controlplane

import "time"

// Child is a process started the way the components are: in its own
// process group, killed by the kernel if its parent dies, its output in
// logDir/<name>.log. The stack runs kube-eip's own binaries so.
type Child struct{ p *process }

// StartChild runs binary with args; env entries (KEY=value) are added to
// this process's environment.
func StartChild(name, binary, logDir string, args, env []string) (*Child, error) {
	p, err := startProcess(name, binary, logDir, args, env)
	if err != nil {
		return nil, err
	}
	return &Child{p: p}, nil
}

// Stop terminates the child, killing it after grace.
func (c *Child) Stop(grace time.Duration) { c.p.stop(grace) }

// Kill ends the child at once, with SIGKILL, as a node or OOM kill would:
// it gets no chance to clean up.
func (c *Child) Kill() { c.p.stop(0) }

// PID is the child's process id, to read its resource use from /proc.
func (c *Child) PID() int { return c.p.cmd.Process.Pid }

// Exited reports whether the child has exited.
func (c *Child) Exited() bool { return c.p.exited() }

// ExitError describes how the child ended, with the tail of its log.
func (c *Child) ExitError() error { return c.p.exitError() }
