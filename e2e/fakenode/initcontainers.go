package fakenode

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// advanceInit moves the pod's init containers along in order: ones that
// do not run for real finish at once, a real one runs until it exits, a
// failed one is restarted after a capped exponential backoff (or fails the
// pod under restartPolicy Never). It returns when to look again; 0 means
// at the next event, which a process's exit also sends.
func (k *Kubelet) advanceInit(pod *corev1.Pod, st *podState, hostIP string) (time.Duration, error) {
	if !st.containersStarted.IsZero() || st.failed {
		return 0, nil
	}
	now := time.Now()
	for i := range pod.Spec.InitContainers {
		c, r := &pod.Spec.InitContainers[i], st.inits[i]
		if r.done != nil {
			continue
		}
		if !r.real {
			t := metav1.NewTime(now.Truncate(time.Second))
			r.done = &corev1.ContainerStateTerminated{
				Reason: "Completed", StartedAt: t, FinishedAt: t,
				ContainerID: containerID(pod.UID, c.Name, r.restarts),
			}
			continue
		}
		if r.proc != nil {
			if !r.proc.exited() {
				return 0, nil
			}
			k.reap(pod, c, r, now)
			if r.done != nil {
				continue
			}
		}
		if r.lastFailure != nil && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			st.failed = true
			return 0, nil
		}
		if wait := r.retryAt.Sub(now); wait > 0 {
			return wait, nil
		}
		img, isImage, err := k.imageFor(c.Image)
		switch {
		case isImage && err != nil:
			r.waitReason, r.waitMessage = "ErrImagePull", err.Error()
		case isImage:
			err = k.startImageContainer(pod, st, c, r, img, hostIP)
		default:
			bin, _ := k.localBinary(c.Image)
			err = k.startInit(pod, st, c, r, bin, hostIP, st.volumes)
		}
		if err != nil {
			if r.waitReason == "" {
				r.waitReason, r.waitMessage = "CreateContainerConfigError", err.Error()
			}
			return 0, fmt.Errorf("starting init container %s of %s: %w", c.Name, st.key, err)
		}
		return 0, nil
	}
	st.containersStarted = metav1.NewTime(now.Truncate(time.Second))
	return 0, nil
}

// isSidecar tells a restartable init container, which keeps running beside
// the app; it is started, like the app's containers, without a process.
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// reap records how a finished init container ended.
func (k *Kubelet) reap(pod *corev1.Pod, c *corev1.Container, r *containerRun, now time.Time) {
	term := r.ended(pod.UID, now)
	if term.ExitCode == 0 {
		r.done = term
		return
	}
	r.lastFailure = term
	if pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Init container %s exited with code %d", c.Name, term.ExitCode)
		return
	}
	k.backOff(pod, r, r.restarts+1, now)
}

// ended takes a run's exited process off it and says how it ended, with
// its last output as the message of a failure.
func (r *containerRun) ended(uid types.UID, now time.Time) *corev1.ContainerStateTerminated {
	p := r.proc
	r.proc = nil
	r.stopProbes()
	term := &corev1.ContainerStateTerminated{
		ExitCode:    p.exitCode,
		Reason:      "Completed",
		StartedAt:   r.running,
		FinishedAt:  metav1.NewTime(now.Truncate(time.Second)),
		ContainerID: containerID(uid, r.name, r.restarts),
	}
	if p.exitCode != 0 {
		term.Reason, term.Message = "Error", p.tail()
	}
	return term
}

// backOff puts a run's next start off by the n-th step of the back-off.
func (k *Kubelet) backOff(pod *corev1.Pod, r *containerRun, n int32, now time.Time) {
	delay := k.opts.CrashLoopBackOff.delay(n)
	r.retryAt = now.Add(delay)
	k.recorder.Eventf(pod, corev1.EventTypeWarning, "BackOff", "Back-off %s restarting failed container %s in pod %s", delay, r.name, pod.Name)
}

// nextRestarts is the restart count of the run about to start.
func (r *containerRun) nextRestarts() int32 {
	if r.ran {
		return r.restarts + 1
	}
	return r.restarts
}

// begin records that run number restarts started as proc.
func (r *containerRun) begin(proc *process, restarts int32) {
	r.proc, r.ran, r.restarts = proc, true, restarts
	r.running = metav1.NewTime(time.Now().Truncate(time.Second))
	r.waitReason, r.waitMessage = "", ""
}

func (k *Kubelet) startInit(pod *corev1.Pod, st *podState, c *corev1.Container, r *containerRun, bin, hostIP string, volumes map[string]string) error {
	args, env, err := k.processArgs(pod, c, st.ip, hostIP, mountRewrites(c, volumes))
	if err != nil {
		return err
	}
	restarts := r.nextRestarts()
	dir := filepath.Join(st.dir, c.Name)
	proc, err := startProcess(processSpec{
		binary:  bin,
		args:    args,
		env:     env,
		dir:     dir,
		logPath: logPath(dir, restarts),
	}, func() { k.queue.Add(queueKey{kind: podKey, name: st.key}) })
	if err != nil {
		return err
	}
	r.begin(proc, restarts)
	k.recorder.Eventf(pod, corev1.EventTypeNormal, "Started", "Started container %s (local process %s)", c.Name, bin)
	k.log.V(2).Info("started init container", "pod", st.key, "container", c.Name, "binary", bin, "args", args, "log", proc.logPath)
	return nil
}

// mountRewrites maps the container's mount paths of materialized volumes
// to their host directories.
func mountRewrites(c *corev1.Container, volumes map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range c.VolumeMounts {
		if dir, ok := volumes[m.Name]; ok {
			out[m.MountPath] = filepath.Join(dir, m.SubPath)
		}
	}
	return out
}

// processArgs builds a local process's arguments and environment from a
// container: the command minus its first word (the binary stands in for
// it) then the args, $(VAR) references expanded, the container's variables
// as resolveEnv finds them, and every mount path rewritten to its host
// directory.
func (k *Kubelet) processArgs(pod *corev1.Pod, c *corev1.Container, podIP, hostIP string, mounts map[string]string) (args, env []string, err error) {
	vars, err := k.resolveEnv(pod, c, podIP, hostIP, nil)
	if err != nil {
		return nil, nil, err
	}
	rewrite := pathRewriter(mounts)
	var words []string
	if len(c.Command) > 0 {
		words = append(words, c.Command[1:]...)
	}
	for _, w := range append(words, c.Args...) {
		args = append(args, rewrite.Replace(expand(w, vars.lookup)))
	}
	hostname := cmp.Or(pod.Spec.Hostname, pod.Name)
	// A local binary runs on this machine: it keeps the host's PATH and HOME.
	env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HOSTNAME=" + hostname}
	env = append(env, vars.list(rewrite.Replace)...)
	return args, env, nil
}

// pathRewriter replaces mount paths, longest first, in one pass so that a
// host directory is never rewritten again.
func pathRewriter(mounts map[string]string) *strings.Replacer {
	paths := make([]string, 0, len(mounts))
	for p := range mounts {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	pairs := make([]string, 0, 2*len(paths))
	for _, p := range paths {
		pairs = append(pairs, p, mounts[p])
	}
	return strings.NewReplacer(pairs...)
}

// containerID is a stable runtime id for one run of a container.
func containerID(uid types.UID, name string, restarts int32) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", uid, name, restarts)))
	return "containerd://" + hex.EncodeToString(sum[:])
}

// imageID is a made-up digest reference for an image.
func imageID(image string) string {
	sum := sha256.Sum256([]byte(image))
	return imageRepository(image) + "@sha256:" + hex.EncodeToString(sum[:])
}
