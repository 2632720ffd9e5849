package fakenode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// rebuild takes in the pods already on the nodes before any worker runs:
// which addresses they hold (from their status, the only record a
// restarted Kubelet has), and how far their init containers got. Live pods
// claim their addresses first; a terminating or finished pod keeps its
// claim only while the address is still on the ENI and no live pod holds
// it, so that its release cannot take a live pod's address away. The
// addresses no pod claims are the warm pool, cooling from now; when
// addresses are released immediately, secondary IPs no pod claims are
// orphans and unassigned instead.
func (k *Kubelet) rebuild(ctx context.Context) error {
	all, err := k.pods.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	k.mu.Lock()
	var live, rest []*corev1.Pod
	for _, pod := range all {
		if k.nodes[pod.Spec.NodeName] == nil {
			continue
		}
		if pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodFailed && pod.Status.Phase != corev1.PodSucceeded {
			live = append(live, pod)
		} else {
			rest = append(rest, pod)
		}
	}
	for i, pod := range append(live, rest...) {
		st := k.newPodState(pod)
		isLive := i < len(live)
		if ip := pod.Status.PodIP; ip != "" && !pod.Spec.HostNetwork {
			if k.nodes[pod.Spec.NodeName].ipam.claim(ip, pod.UID, !isLive) {
				st.ip = ip
			} else if isLive {
				k.log.Info("pod shows an address another pod holds; giving it a new one", "pod", st.key, "ip", ip)
			}
		}
		k.state[st.key] = st
	}
	nodes := make([]*node, 0, len(k.nodes))
	for _, n := range k.nodes {
		nodes = append(nodes, n)
	}
	keep := map[string]bool{}
	for _, st := range k.state {
		keep[filepath.Base(st.dir)] = true
	}
	k.mu.Unlock()

	for _, n := range nodes {
		if kept := n.ipam.adopt(); kept > 0 {
			k.log.Info("keeping the addresses no pod holds as the warm pool, cooling from now", "node", n.name, "addresses", kept)
		}
		freed, err := n.ipam.sweep(ctx)
		if err != nil {
			return fmt.Errorf("giving back the unused addresses of node %s: %w", n.name, err)
		}
		if len(freed) > 0 {
			k.log.Info("unassigned secondary IPs no pod holds", "node", n.name, "ips", freed)
		}
	}
	k.removeStaleVolumes(keep)
	k.log.V(1).Info("rebuilt pod state", "live", len(live), "finishing", len(rest))
	return nil
}

// removeStaleVolumes drops the volumes of pods that are gone; their logs
// stay.
func (k *Kubelet) removeStaleVolumes(keep map[string]bool) {
	entries, err := os.ReadDir(filepath.Join(k.workDir, "pods"))
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && !keep[e.Name()] && strings.Count(e.Name(), "_") >= 2 {
			_ = os.RemoveAll(filepath.Join(k.workDir, "pods", e.Name(), volumesDir))
		}
	}
}
