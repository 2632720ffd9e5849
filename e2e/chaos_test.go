package e2e

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/e2e/ec2sim"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// The chaos test's size. CI runs the small default; the figure of the
// design (300 pods, 5 minutes) is -chaos.full.
var (
	chaosFull     = flag.Bool("chaos.full", false, "run the chaos test at full size: 300 pods churning for 5 minutes")
	chaosPods     = flag.Int("chaos.pods", 40, "pods kept churning in the chaos test")
	chaosDuration = flag.Duration("chaos.duration", 45*time.Second, "how long the chaos test churns")
	chaosKill     = flag.Duration("chaos.kill-every", 10*time.Second, "how often the chaos test kills the binder")
)

// Pods come and go while the binder is killed (SIGKILL) again and again
// and EC2 fails 5% of calls, some of them after acting (an allocation
// that happened though the caller saw an error). Afterwards EC2 holds no
// leaked, misbound or doubly-bound address.
func TestChaosLeavesNoLeakedOrMisboundAddress(t *testing.T) {
	pods, duration, killEvery := *chaosPods, *chaosDuration, *chaosKill
	if *chaosFull {
		pods, duration, killEvery = 300, 5*time.Minute, 20*time.Second
	}
	if testing.Short() {
		t.Skip("chaos takes a minute")
	}
	ctx := t.Context()
	ns := newEIPNamespace(t, map[string]string{"tenant": "chaos"})
	// The VPC CNI's warm pool with a cooldown of 2 s instead of 30: freed
	// IPs go to new pods all the time, which is when an address could
	// follow one.
	group, err := env.StartNodeGroup(ctx, stack.NodeGroup{Name: "chaos", Nodes: max(3, pods/100+1), PrefixDelegation: true,
		CNI: fakenode.CNIOptions{Cooldown: chaosCooldown}})
	if err != nil {
		t.Fatalf("starting the chaos node group: %v", err)
	}
	t.Cleanup(group.Stop)
	t.Cleanup(func() { _ = env.EC2.SetFaults(ec2sim.Faults{}); restartBinder(t) })

	stickyReplicas := int32(max(2, pods/10))
	autoPods := pods - int(stickyReplicas)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "sticky"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(stickyReplicas),
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sticky"}},
			Template:            onGroup(eipPodTemplate("sticky", map[string]string{api.AnnotationMode: "sticky"}), group.NodeSelector()),
		},
	}
	if _, err := kube.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	churn := &churner{ns: ns, template: onGroup(eipPodTemplate("churn", map[string]string{api.AnnotationMode: "auto"}), group.NodeSelector())}
	for range autoPods {
		churn.create(ctx, t)
	}

	nodes := startNodeChaos(ctx, t)

	faults := ec2sim.Faults{
		Default: ec2sim.FaultSpec{InternalErrorRate: 0.025, UnavailableRate: 0.025},
		Actions: map[string]ec2sim.FaultSpec{
			// An allocation that happened though the caller saw an error.
			"AllocateAddress":  {InternalErrorRate: 0.05, AfterApply: true},
			"AssociateAddress": {UnavailableRate: 0.025, InternalErrorRate: 0.025, AfterApply: true},
		},
	}
	if err := env.EC2.SetFaults(faults); err != nil {
		t.Fatal(err)
	}
	var kills atomic.Int64
	chaosCtx, stop := context.WithTimeout(ctx, duration)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { // the binder dies again and again
		tick := time.NewTicker(killEvery)
		defer tick.Stop()
		for {
			select {
			case <-chaosCtx.Done():
				return
			case <-tick.C:
				env.KillBinder()
				kills.Add(1)
				if err := env.StartBinder(ctx); err != nil {
					t.Errorf("restarting the binder: %v", err)
					return
				}
			}
		}
	})
	wg.Go(func() { // pods come and go
		for chaosCtx.Err() == nil {
			churn.replaceRandom(ctx, t, max(1, autoPods/10))
			if n := rand.IntN(int(stickyReplicas)); chaosCtx.Err() == nil { //nolint:gosec // which pod to delete, not a secret
				_ = kube.CoreV1().Pods(ns).Delete(ctx, fmt.Sprintf("sticky-%d", n), metav1.DeleteOptions{})
			}
			select {
			case <-chaosCtx.Done():
			case <-time.After(time.Second):
			}
		}
	})
	wg.Go(func() { nodes.run(chaosCtx, t) })
	exposures := &exposureWatch{ns: ns}
	wg.Go(func() { exposures.watch(chaosCtx) })
	wg.Wait()
	if err := env.EC2.SetFaults(ec2sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	restartBinder(t)
	t.Logf("churned %d pods (%d created) for %s; binder killed %d times; %d egress nodes joined and left; the floating holder fell silent %d times",
		pods, churn.created.Load(), duration, kills.Load(), nodes.joins, nodes.silences)
	// While the binder was being killed: a pod on an IP that still carried
	// another pod's address, seen by sampling EC2 and the pods. Each is a
	// window the binder was down longer than the cooldown; it is reported,
	// not failed, as the README says it can happen then. Settled, below,
	// there must be none.
	t.Logf("exposures seen while churning: %d samples of %d, %d distinct, longest seen %s",
		exposures.hits, exposures.samples, len(exposures.seen), exposures.longest())

	// Settled: every live pod bound, and EC2 agrees with the cluster.
	eventually(t, 3*time.Minute, "EC2 consistent with the cluster", func(ctx context.Context) (bool, string, error) {
		problems, err := auditAddresses(ctx, ns)
		if err != nil {
			return false, "", err
		}
		problems = append(problems, nodes.audit()...)
		return len(problems) == 0, strings.Join(problems, "; "), nil
	})

	// And when everything is deleted, every address goes.
	if err := kube.AppsV1().StatefulSets(ns).Delete(ctx, "sticky", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kube.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "every address of the test released", func(ctx context.Context) (bool, string, error) {
		var left []string
		for _, a := range env.EC2.Snapshot().Addresses {
			if a.Tags[api.TagCluster] == stack.ClusterName && strings.HasPrefix(a.Tags[api.TagOwner], ns+"/") {
				left = append(left, a.PublicIP+" of "+a.Tags[api.TagOwner])
			}
		}
		return len(left) == 0, fmt.Sprintf("%d left: %v", len(left), left), nil
	})
}

// auditAddresses compares the emulator's addresses of namespace ns with
// its pods. It returns what is wrong: a pod not bound, an address on an IP
// that is not its pod's, or a pod on an IP that carries another pod's
// address (misbound), two addresses for one pod (doubly bound), an address
// no pod owns (leaked).
func auditAddresses(ctx context.Context, ns string) ([]string, error) {
	list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	live := map[string]*corev1.Pod{} // namespace/name
	byIP := map[string]*corev1.Pod{}
	var problems []string
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp != nil {
			problems = append(problems, "pod "+p.Name+" still terminating")
			continue
		}
		live[ns+"/"+p.Name] = p
		if p.Status.PodIP != "" {
			byIP[p.Status.PodIP] = p
		}
		if p.Labels[api.LabelPublicIP] == "" || !eipReadyCondition(p) {
			problems = append(problems, "pod "+p.Name+" not bound")
		}
	}
	perPod := map[string]int{}
	addrs := env.EC2.Snapshot().Addresses
	for _, e := range exposed(addrs, byIP, ns) {
		problems = append(problems, "misbound: "+e)
	}
	for _, a := range addrs {
		owner := a.Tags[api.TagOwner]
		if a.Tags[api.TagCluster] != stack.ClusterName || !strings.HasPrefix(owner, ns+"/") {
			continue
		}
		p := live[owner]
		switch {
		case p == nil:
			problems = append(problems, fmt.Sprintf("%s leaked: its pod %s is gone", a.PublicIP, owner))
			continue
		case a.Tags[api.TagMode] != string(api.ModeSticky) && a.Tags[api.TagClaim] != p.Annotations[api.AnnotationClaim]:
			problems = append(problems, fmt.Sprintf("%s leaked: allocated for an earlier pod named %s", a.PublicIP, owner))
			continue
		}
		perPod[owner]++
		if a.AssociationID == "" {
			problems = append(problems, fmt.Sprintf("%s of %s not associated", a.PublicIP, owner))
			continue
		}
		if holder := byIP[a.PrivateIPAddress]; holder == nil || ns+"/"+holder.Name != owner || p.Annotations[api.AnnotationAllocationID] != a.AllocationID {
			problems = append(problems, fmt.Sprintf("%s misbound: owned by %s, on %s", a.PublicIP, owner, a.PrivateIPAddress))
		}
	}
	for owner, n := range perPod {
		if n > 1 {
			problems = append(problems, fmt.Sprintf("%s holds %d addresses", owner, n))
		}
	}
	return problems, nil
}

// churner keeps bare auto pods coming and going.
type churner struct {
	ns       string
	template corev1.PodTemplateSpec
	mu       sync.Mutex
	names    []string
	created  atomic.Int64
}

func (c *churner) create(ctx context.Context, t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: *c.template.ObjectMeta.DeepCopy(), Spec: *c.template.Spec.DeepCopy()}
	pod.Name = fmt.Sprintf("churn-%d", c.created.Add(1))
	if _, err := kube.CoreV1().Pods(c.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Errorf("creating %s: %v", pod.Name, err)
		return
	}
	c.mu.Lock()
	c.names = append(c.names, pod.Name)
	c.mu.Unlock()
}

// replaceRandom deletes n random pods and creates n new ones.
func (c *churner) replaceRandom(ctx context.Context, t *testing.T, n int) {
	for range n {
		c.mu.Lock()
		i := rand.IntN(len(c.names)) //nolint:gosec // which pod to delete, not a secret
		name := c.names[i]
		c.names = append(c.names[:i], c.names[i+1:]...)
		c.mu.Unlock()
		_ = kube.CoreV1().Pods(c.ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		c.create(ctx, t)
	}
}

func onGroup(tmpl corev1.PodTemplateSpec, selector map[string]string) corev1.PodTemplateSpec {
	tmpl.Spec.NodeSelector = selector
	return tmpl
}

// chaosCooldown is the CNI cooldown of the chaos nodes.
const chaosCooldown = 2 * time.Second

// exposed lists the pods on an IP that carries an address of another pod
// (or of none): whoever egresses from that pod leaves through it. Only
// kube-eip's addresses of ns are looked at.
func exposed(addrs []ec2sim.Address, byIP map[string]*corev1.Pod, ns string) []string {
	var out []string
	for _, a := range addrs {
		if a.AssociationID == "" || a.Tags[api.TagCluster] != stack.ClusterName || !strings.HasPrefix(a.Tags[api.TagOwner], ns+"/") {
			continue
		}
		if p := byIP[a.PrivateIPAddress]; p != nil && ns+"/"+p.Name != a.Tags[api.TagOwner] {
			out = append(out, fmt.Sprintf("pod %s on %s carries %s of %s", p.Name, a.PrivateIPAddress, a.PublicIP, a.Tags[api.TagOwner]))
		}
	}
	return out
}

// exposureWatch samples EC2 and the pods while chaos runs, for exposed.
type exposureWatch struct {
	ns            string
	samples, hits int
	seen          map[string]time.Time // exposure → first seen
	last          map[string]time.Time // exposure → last seen
}

func (w *exposureWatch) watch(ctx context.Context) {
	w.seen, w.last = map[string]time.Time{}, map[string]time.Time{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		list, err := kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		byIP := map[string]*corev1.Pod{}
		for i := range list.Items {
			if p := &list.Items[i]; p.DeletionTimestamp == nil && p.Status.PodIP != "" {
				byIP[p.Status.PodIP] = p
			}
		}
		w.samples++
		now := time.Now()
		found := exposed(env.EC2.Snapshot().Addresses, byIP, w.ns)
		if len(found) > 0 {
			w.hits++
		}
		for _, e := range found {
			if _, ok := w.seen[e]; !ok {
				w.seen[e] = now
			}
			w.last[e] = now
		}
	}
}

func (w *exposureWatch) longest() time.Duration {
	var d time.Duration
	for e, first := range w.seen {
		d = max(d, w.last[e].Sub(first))
	}
	return d
}
