package fakenode

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// backoffReset is how long a container must run for its next crash to
// start the back-off over, as the kubelet's.
const backoffReset = 10 * time.Minute

// advanceContainers runs the pod's app containers of images once its init
// containers are done: it starts them, reaps them, restarts them under the
// pod's restart policy after the back-off. Containers of other images
// "run" from containersStarted on and need nothing here. It returns when
// to look again; 0 means at the next event, which an exit sends.
func (k *Kubelet) advanceContainers(pod *corev1.Pod, st *podState, hostIP string) (time.Duration, error) {
	if st.containersStarted.IsZero() || st.failed {
		return 0, nil
	}
	now := time.Now()
	var after time.Duration
	var errs []error
	for i := range pod.Spec.Containers {
		c, r := &pod.Spec.Containers[i], st.containers[i]
		if !r.real {
			continue
		}
		if r.proc != nil {
			if !r.proc.exited() {
				continue
			}
			k.reapApp(pod, r, now)
		}
		if r.done != nil {
			continue // finished, and the policy does not restart it
		}
		if wait := r.retryAt.Sub(now); wait > 0 {
			after = minPositive(after, wait)
			continue
		}
		img, _, err := k.imageFor(c.Image)
		if err != nil {
			r.waitReason, r.waitMessage = "ErrImagePull", err.Error()
			errs = append(errs, err)
			continue
		}
		if err := k.startImageContainer(pod, st, c, r, img, hostIP); err != nil {
			r.waitReason, r.waitMessage = "CreateContainerConfigError", err.Error()
			k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
			errs = append(errs, fmt.Errorf("starting container %s of %s: %w", c.Name, st.key, err))
		}
	}
	return after, errors.Join(errs...)
}

// minPositive is the sooner of two waits, where 0 (or less) is no wait.
func minPositive(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return max(b, 0)
	case b <= 0:
		return a
	}
	return min(a, b)
}

// reapApp records how an app container's run ended and whether, and when,
// it runs again.
func (k *Kubelet) reapApp(pod *corev1.Pod, r *containerRun, now time.Time) {
	term := r.ended(pod.UID, now)
	r.lastFailure = term
	restart := false
	switch pod.Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
	case corev1.RestartPolicyOnFailure:
		restart = term.ExitCode != 0
	default:
		restart = true
	}
	if !restart {
		r.done = term
		return
	}
	if now.Sub(r.running.Time) >= backoffReset {
		r.backoffs = 0
	}
	r.backoffs++
	k.backOff(pod, r, r.backoffs, now)
}

// startImageContainer starts one run of a container of an image: init or
// app, restarted or not.
func (k *Kubelet) startImageContainer(pod *corev1.Pod, st *podState, c *corev1.Container, r *containerRun, img *unpackedImage, hostIP string) error {
	if pod.Spec.HostNetwork {
		return errors.New("the fake kubelet runs no container in the host's network")
	}
	if st.net == nil {
		network, err := newPodNetwork(k.log.WithValues("pod", st.key), append([]netip.AddrPort{k.opts.APIServer}, k.opts.Relays...))
		if err != nil {
			return err
		}
		st.net = network
		k.mu.Lock()
		k.nets[st.ip] = network
		k.mu.Unlock()
	}
	spec, err := k.containerSpec(pod, st, c, img, hostIP)
	if err != nil {
		return err
	}
	restarts := r.nextRestarts()
	dir := filepath.Join(st.dir, c.Name)
	run := filepath.Join(dir, "run")
	// The writable layer of a run does not outlive it, as a container's.
	if err := os.RemoveAll(run); err != nil {
		return fmt.Errorf("clearing the previous run: %w", err)
	}
	spec.scratch, spec.root = filepath.Join(run, "scratch"), filepath.Join(run, "root")
	for _, d := range []string{spec.scratch, spec.root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	spec.logPath = logPath(dir, restarts)
	spec.netns = st.net.fd
	proc, err := startContainer(spec, func() { k.queue.Add(queueKey{kind: podKey, name: st.key}) })
	if err != nil {
		return err
	}
	r.begin(proc, restarts)
	r.probes = k.startProbes(pod, st, c, r, proc)
	k.recorder.Eventf(pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	k.log.V(2).Info("started container", "pod", st.key, "container", c.Name, "image", c.Image, "command", spec.path, "args", spec.args, "uid", spec.uid, "log", spec.logPath)
	return nil
}

// logPath is where run number restarts of a container writes its output.
func logPath(containerDir string, restarts int32) string {
	return filepath.Join(containerDir, strconv.Itoa(int(restarts))+".log")
}

// removeRootfsDirs removes the empty mount points of a pod's containers'
// roots; the mounts themselves went with the containers' namespaces.
func removeRootfsDirs(podDir string) {
	entries, err := os.ReadDir(podDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			_ = os.RemoveAll(filepath.Join(podDir, e.Name(), "run"))
		}
	}
}

// containerSpec works out what a container runs, as whom, with what: the
// kubelet's rules for command and args against the image's entrypoint and
// cmd, the environment, the user, the mounts.
func (k *Kubelet) containerSpec(pod *corev1.Pod, st *podState, c *corev1.Container, img *unpackedImage, hostIP string) (containerSpec, error) {
	cfg := img.config
	env, lookup, err := k.containerEnv(pod, c, st.ip, hostIP, cfg.Env)
	if err != nil {
		return containerSpec{}, err
	}
	words := cfg.Entrypoint
	args := cfg.Cmd
	if len(c.Command) > 0 {
		words, args = c.Command, nil
	}
	if len(c.Args) > 0 {
		args = c.Args
	}
	argv := slices.Concat(words, args)
	for i, w := range argv {
		argv[i] = expand(w, lookup)
	}
	if len(argv) == 0 {
		return containerSpec{}, errors.New("no command: the image has no entrypoint and the container gives none")
	}
	uid, gid, err := containerUser(pod, c, cfg.User)
	if err != nil {
		return containerSpec{}, err
	}
	mounts, err := containerMounts(pod, c, st.volumes)
	if err != nil {
		return containerSpec{}, err
	}
	readOnly := false
	if sc := c.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil {
		readOnly = *sc.ReadOnlyRootFilesystem
	}
	return containerSpec{
		image:    img.root,
		mounts:   mounts,
		readOnly: readOnly,
		path:     argv[0],
		args:     argv[1:],
		env:      env,
		workDir:  cmp.Or(c.WorkingDir, cfg.WorkingDir, "/"),
		uid:      uid,
		gid:      gid,
		hostname: cmp.Or(pod.Spec.Hostname, pod.Name),
	}, nil
}

// containerUser is the uid and gid a container runs as: its security
// context over the pod's over the image's USER (numeric only, as the
// kubelet can check runAsNonRoot only then).
func containerUser(pod *corev1.Pod, c *corev1.Container, imageUser string) (uid, gid uint32, err error) {
	if imageUser != "" {
		u, g, _ := strings.Cut(imageUser, ":")
		n, err := strconv.ParseUint(u, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("image user %q is not numeric, which the fake kubelet needs", imageUser)
		}
		uid, gid = uint32(n), uint32(n)
		if g != "" {
			n, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return 0, 0, fmt.Errorf("image group %q is not numeric", g)
			}
			gid = uint32(n)
		}
	}
	var nonRoot *bool
	for _, sc := range []*corev1.SecurityContext{podSecurityContext(pod), c.SecurityContext} {
		if sc == nil {
			continue
		}
		if sc.RunAsUser != nil {
			uid = uint32(*sc.RunAsUser) //nolint:gosec // G115: validation bounds user ids to 0-2147483647
		}
		if sc.RunAsGroup != nil {
			gid = uint32(*sc.RunAsGroup) //nolint:gosec // G115: as above
		}
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
	}
	if nonRoot != nil && *nonRoot && uid == 0 {
		return 0, 0, errors.New("container has runAsNonRoot and image will run as root")
	}
	return uid, gid, nil
}

// podSecurityContext is the pod's security context in the container's
// shape, for the fields both have.
func podSecurityContext(pod *corev1.Pod) *corev1.SecurityContext {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return nil
	}
	return &corev1.SecurityContext{RunAsUser: psc.RunAsUser, RunAsGroup: psc.RunAsGroup, RunAsNonRoot: psc.RunAsNonRoot}
}

// containerMounts maps the container's volume mounts to the pod's volumes
// on the host. Volumes the API fills (secrets, config maps, the downward
// API, projections) are read-only, as the kubelet mounts them.
func containerMounts(pod *corev1.Pod, c *corev1.Container, volumes map[string]string) ([]mount, error) {
	kinds := map[string]corev1.VolumeSource{}
	for _, v := range pod.Spec.Volumes {
		kinds[v.Name] = v.VolumeSource
	}
	out := make([]mount, 0, len(c.VolumeMounts))
	for _, m := range c.VolumeMounts {
		dir, ok := volumes[m.Name]
		if !ok {
			return nil, fmt.Errorf("volume %q of mount %s is not ready", m.Name, m.MountPath)
		}
		source := dir
		if m.SubPath != "" {
			// A sub-path must stay inside its volume even through the
			// links a container may have written into it.
			resolved, err := filepath.EvalSymlinks(filepath.Join(dir, filepath.Clean("/"+m.SubPath)))
			if err != nil {
				return nil, fmt.Errorf("subPath %q of volume %q: %w", m.SubPath, m.Name, err)
			}
			base, err := filepath.EvalSymlinks(dir)
			if err != nil {
				return nil, err
			}
			if rel, err := filepath.Rel(base, resolved); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				return nil, fmt.Errorf("subPath %q of volume %q leaves the volume", m.SubPath, m.Name)
			}
			source = resolved
		}
		src := kinds[m.Name]
		apiFilled := src.Secret != nil || src.ConfigMap != nil || src.DownwardAPI != nil || src.Projected != nil
		out = append(out, mount{source: source, target: m.MountPath, readOnly: m.ReadOnly || apiFilled})
	}
	return out, nil
}
