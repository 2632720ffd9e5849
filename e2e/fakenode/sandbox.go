package fakenode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// mount is one volume mount of a container: a host directory or file
// bound at target inside the container's root.
type mount struct {
	source   string
	target   string // absolute, inside the container
	readOnly bool
}

// containerSpec is how to run one container of an unpacked image.
type containerSpec struct {
	image    string // the unpacked image's root, never written to
	scratch  string // an empty host directory: the writable layer's mount point
	root     string // an empty host directory: where the container's root is assembled
	mounts   []mount
	readOnly bool // readOnlyRootFilesystem
	netns    *os.File
	hostname string

	path    string // the program, inside the container
	args    []string
	env     []string
	workDir string
	uid     uint32
	gid     uint32
	logPath string
}

// startContainer runs spec in mount and UTS namespaces of its own (the
// hostname is the pod's), joined to the pod's network namespace: the
// image's files under a writable layer that dies with the container, the
// volumes at their mount paths, a minimal /dev and /proc. The namespaces
// are made on a locked thread, the process is forked from it and inherits
// them, and the thread goes back to the host's namespaces before it is
// unlocked. It must not die instead: a thread's death kills every child
// it forked with Pdeathsig, and the runtime may have forked the control
// plane's from this very thread. Nothing is mounted in the host's
// namespace; the mounts go with the container's last process.
func startContainer(spec containerSpec, onExit func()) (*process, error) {
	logFile, err := openLog(spec.logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	var cmd *exec.Cmd
	if err := onHostThread(unix.CLONE_NEWNS|unix.CLONE_NEWUTS|unix.CLONE_NEWNET, func() error {
		var err error
		cmd, err = forkInNamespaces(spec, logFile)
		return err
	}); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, logPath: spec.logPath, done: make(chan struct{})}
	go p.wait(onExit)
	return p, nil
}

// onHostThread runs fn on a locked thread whose namespaces of the kinds
// in changes (CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWNET; with CLONE_NEWNS
// the working directory too) fn may change, and puts them back afterwards.
// A thread that cannot be put back is parked for good, never ended (see
// startContainer).
func onHostThread(changes int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restore, err := saveThreadNamespaces(changes)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = fn()
		if rerr := restore(); rerr != nil {
			errc <- errors.Join(err, rerr)
			select {} // this thread's state is not the host's: it runs nothing else
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// saveThreadNamespaces opens the calling thread's namespaces of the kinds
// in changes and notes its working directory; the returned function
// returns the thread to them. Only the kinds that change are restored: a
// thread that shares its filesystem state may not even re-enter its own
// mount namespace.
func saveThreadNamespaces(changes int) (restore func() error, err error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	type saved struct {
		name string
		flag int
		file *os.File
	}
	var all []saved
	closeAll := func() {
		for _, k := range all {
			_ = k.file.Close()
		}
	}
	for _, k := range []saved{{"mnt", unix.CLONE_NEWNS, nil}, {"uts", unix.CLONE_NEWUTS, nil}, {"net", unix.CLONE_NEWNET, nil}} {
		if changes&k.flag == 0 {
			continue
		}
		f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/%s", unix.Gettid(), k.name))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("opening the host's %s namespace: %w", k.name, err)
		}
		k.file = f
		all = append(all, k)
	}
	return func() error {
		defer closeAll()
		for _, k := range all {
			if err := unix.Setns(int(k.file.Fd()), k.flag); err != nil {
				return fmt.Errorf("returning to the host's %s namespace: %w", k.name, err)
			}
		}
		if changes&unix.CLONE_NEWNS != 0 {
			// Entering a mount namespace moves to its root.
			return unix.Chdir(cwd)
		}
		return nil
	}, nil
}

func forkInNamespaces(spec containerSpec, logFile *os.File) (*exec.Cmd, error) {
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_NEWUTS); err != nil {
		return nil, fmt.Errorf("creating mount and UTS namespaces (the fake kubelet needs root): %w", err)
	}
	if err := unix.Sethostname([]byte(spec.hostname)); err != nil {
		return nil, fmt.Errorf("setting the hostname: %w", err)
	}
	// Nothing mounted from here on may reach the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("making mounts private: %w", err)
	}
	if err := assembleRoot(spec); err != nil {
		return nil, err
	}
	if err := unix.Setns(int(spec.netns.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("joining the pod's network namespace: %w", err)
	}
	path := spec.path
	if !strings.Contains(path, "/") {
		found, err := lookPath(spec.root, path, spec.env)
		if err != nil {
			return nil, err
		}
		path = found
	}
	cmd := &exec.Cmd{Path: path, Args: append([]string{spec.path}, spec.args...), Env: spec.env, Dir: spec.workDir,
		Stdout: logFile, Stderr: logFile}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     spec.root,
		Credential: &syscall.Credential{Uid: spec.uid, Gid: spec.gid, Groups: []uint32{}},
		Setpgid:    true,
		// Tied to the forking thread, which the runtime never ends (see
		// startContainer): a fake kubelet that dies takes its containers
		// with it.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.path, err)
	}
	return cmd, nil
}

// assembleRoot builds the container's root at spec.root: an overlay of the
// image under a tmpfs layer, /dev, /proc, then the volumes.
func assembleRoot(spec containerSpec) error {
	if err := unix.Mount("tmpfs", spec.scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=64m"); err != nil {
		return fmt.Errorf("mounting the writable layer: %w", err)
	}
	upper, work := filepath.Join(spec.scratch, "upper"), filepath.Join(spec.scratch, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", spec.image, upper, work)
	if err := unix.Mount("overlay", spec.root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting the image's files: %w", err)
	}
	dev, err := mountPoint(spec.root, "/dev", true)
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=1m"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	for _, name := range []string{"null", "zero", "random", "urandom"} {
		if err := bind("/dev/"+name, filepath.Join(dev, name), false, false); err != nil {
			return err
		}
	}
	proc, err := mountPoint(spec.root, "/proc", true)
	if err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	for _, m := range spec.mounts {
		info, err := os.Stat(m.source)
		if err != nil {
			return fmt.Errorf("volume for %s: %w", m.target, err)
		}
		target, err := mountPoint(spec.root, m.target, info.IsDir())
		if err != nil {
			return err
		}
		if err := bind(m.source, target, info.IsDir(), m.readOnly); err != nil {
			return err
		}
	}
	if spec.readOnly {
		// Bound onto itself so that it can be made read-only alone; the
		// mounts below it keep their own modes.
		if err := bind(spec.root, spec.root, true, true); err != nil {
			return fmt.Errorf("making the root read-only: %w", err)
		}
	}
	return nil
}

// bind mounts source at target, read-only if asked.
func bind(source, target string, dir, readOnly bool) error {
	if !dir {
		if f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o644); err == nil {
			_ = f.Close()
		}
	}
	if err := unix.Mount(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding %s at %s: %w", source, target, err)
	}
	if readOnly {
		if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", target, err)
		}
	}
	return nil
}

// mountPoint makes path (absolute, inside root) exist as a directory, or
// as a file if !dir, and returns it on the host. No component may be a
// symbolic link: one would point outside root while the mounts are made.
func mountPoint(root, path string, dir bool) (string, error) {
	clean := filepath.Clean("/" + path)
	if clean == "/" {
		return "", fmt.Errorf("mount path %q: cannot mount over the root", path)
	}
	cur := root
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	for i, part := range parts {
		cur = filepath.Join(cur, part)
		last := i == len(parts)-1
		info, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist) && last && !dir:
			f, err := os.OpenFile(cur, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o644)
			if err != nil {
				return "", fmt.Errorf("mount path %q: %w", path, err)
			}
			_ = f.Close()
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return "", fmt.Errorf("mount path %q: %w", path, err)
			}
		case err != nil:
			return "", fmt.Errorf("mount path %q: %w", path, err)
		case info.Mode()&fs.ModeSymlink != 0:
			return "", fmt.Errorf("mount path %q: %s is a symbolic link in the image, which the fake kubelet does not follow", path, "/"+filepath.Join(parts[:i+1]...))
		case !last && !info.IsDir():
			return "", fmt.Errorf("mount path %q: %s is not a directory", path, "/"+filepath.Join(parts[:i+1]...))
		}
	}
	return cur, nil
}

// lookPath finds a command in the container's PATH, as the runtime does.
func lookPath(root, name string, env []string) (string, error) {
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		candidate := filepath.Join("/", dir, name)
		if info, err := os.Stat(filepath.Join(root, candidate)); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in the image's PATH %s", name, path)
}
