package fakenode

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podState is what the Kubelet knows about one pod beyond its object: the
// address it gave it and how its init containers are doing. The queue never
// syncs one pod twice at once; mu guards against the node and Stop paths,
// which tear pods down from elsewhere.
type podState struct {
	mu sync.Mutex

	key  string // namespace/name
	uid  types.UID
	node string
	dir  string // under the work dir: logs and volumes

	ip                string
	startTime         metav1.Time
	containersStarted metav1.Time // zero until every init container is done
	inits             []*containerRun
	containers        []*containerRun // the app containers; only those of images run

	// What pods that run something have: their volumes on the host by
	// name, the service-account tokens in them, and their network.
	volumes map[string]string
	tokens  map[string]*token
	net     *podNetwork

	runsSomething bool // some container runs for real (containerRun.real): the pod gets volumes

	failed   bool // an init container failed and the pod may not restart it
	released bool // ip went back to the node
	killing  bool // processes were told to stop for the pod's deletion
	// hadProcesses: some were running when the deletion came.
	hadProcesses bool
	deleted      bool // the grace-0 delete was sent; only finalizers hold it
	gone         bool // torn down; nothing more to do
}

// containerRun is one container's progress: an init container's until it
// is done, an app container's for the pod's life.
type containerRun struct {
	name     string
	real     bool // it runs for real; otherwise it "runs" without a process
	restarts int32
	ran      bool // it ran at least once, so the next start is a restart

	proc    *process
	running metav1.Time // when proc started
	probes  *probeSet   // proc's probers; nil when it has none running

	done        *corev1.ContainerStateTerminated // it finished with exit code 0 (an app container: for good)
	lastFailure *corev1.ContainerStateTerminated // an app container: its last run, however it ended
	retryAt     time.Time
	backoffs    int32 // restarts since the container last ran long enough to reset the back-off

	// waiting explains why it cannot start (bad env reference, say).
	waitReason, waitMessage string
}

// podDirName names a pod's folder "<namespace>_<name>_<uid>", so that a
// person finds it; the longest legal names would exceed a file name's 255
// bytes, so the name is cut there, and the UID keeps it unique.
func podDirName(pod *corev1.Pod) string {
	const nameMax = 255
	name := pod.Name
	if over := len(pod.Namespace) + len(name) + len(pod.UID) + 2 - nameMax; over > 0 {
		name = name[:len(name)-over]
	}
	return pod.Namespace + "_" + name + "_" + string(pod.UID)
}

func (k *Kubelet) newPodState(pod *corev1.Pod) *podState {
	st := &podState{
		key:       pod.Namespace + "/" + pod.Name,
		uid:       pod.UID,
		node:      pod.Spec.NodeName,
		dir:       filepath.Join(k.workDir, "pods", podDirName(pod)),
		startTime: metav1.NewTime(time.Now().Truncate(time.Second)),
	}
	if pod.Status.StartTime != nil {
		st.startTime = *pod.Status.StartTime
	}
	// Pick up where an earlier Kubelet left off: finished init containers
	// stay finished, failures keep their count; one that was running is
	// started again, as after a node reboot.
	statuses := map[string]corev1.ContainerStatus{}
	for _, cs := range pod.Status.InitContainerStatuses {
		statuses[cs.Name] = cs
	}
	allDone := true
	for _, c := range pod.Spec.InitContainers {
		r := &containerRun{name: c.Name, real: k.runnable(&c, true)}
		if cs, ok := statuses[c.Name]; ok {
			r.restarts = cs.RestartCount
			if t := cs.State.Terminated; t != nil && t.ExitCode == 0 {
				r.done = t.DeepCopy()
			} else if t != nil {
				r.lastFailure, r.ran = t.DeepCopy(), true
			}
			if t := cs.LastTerminationState.Terminated; t != nil && r.done == nil {
				r.lastFailure, r.ran = t.DeepCopy(), true
			}
		}
		allDone = allDone && r.done != nil
		st.inits = append(st.inits, r)
	}
	app := map[string]corev1.ContainerStatus{}
	for _, cs := range pod.Status.ContainerStatuses {
		app[cs.Name] = cs
	}
	for _, c := range pod.Spec.Containers {
		r := &containerRun{name: c.Name, real: k.runnable(&c, false)}
		if cs, ok := app[c.Name]; ok && r.real {
			// A container that ran under an earlier Kubelet is started
			// again, as after a node reboot, and counts as a restart.
			r.restarts, r.ran = cs.RestartCount, cs.ContainerID != ""
			if t := cs.LastTerminationState.Terminated; t != nil {
				r.lastFailure = t.DeepCopy()
			}
		}
		st.containers = append(st.containers, r)
	}
	st.runsSomething = slices.ContainsFunc(st.runs(), func(r *containerRun) bool { return r.real })
	if allDone {
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.State.Running != nil {
				st.containersStarted = cs.State.Running.StartedAt
				break
			}
		}
	}
	return st
}

// runs lists every container's run, init containers first.
func (st *podState) runs() []*containerRun {
	return append(slices.Clip(st.inits), st.containers...)
}

// processes lists the processes still running.
func (st *podState) processes() []*process {
	var out []*process
	for _, r := range st.runs() {
		if r.proc != nil && !r.proc.exited() {
			out = append(out, r.proc)
		}
	}
	return out
}

// killProcesses tells the processes to stop, killing them after grace;
// their probes stop at once.
func (st *podState) killProcesses(grace time.Duration) {
	for _, r := range st.runs() {
		r.stopProbes()
	}
	for _, p := range st.processes() {
		p.stop(grace)
	}
}

// run finds a container's run by name.
func (st *podState) run(name string) *containerRun {
	for _, r := range st.runs() {
		if r.name == name {
			return r
		}
	}
	return nil
}

// waitProcesses blocks until the processes are gone; it must be called
// without mu, after killProcesses.
func (st *podState) waitProcesses() {
	st.mu.Lock()
	procs := st.processes()
	st.mu.Unlock()
	for _, p := range procs {
		<-p.done
	}
}

// finish tears the pod down locally: processes killed, volumes removed.
// Logs stay for whoever debugs the run.
func (st *podState) finish(grace time.Duration) {
	st.killProcesses(grace)
	procs := st.processes()
	network := st.net
	st.net = nil
	dir := st.dir
	st.gone = true
	// The network and the volumes go once the processes have: the
	// containers may still be in them until SIGKILL lands.
	go func() {
		for _, p := range procs {
			<-p.done
		}
		if network != nil {
			network.close()
		}
		_ = os.RemoveAll(filepath.Join(dir, volumesDir))
		removeRootfsDirs(dir)
	}()
}
