package fakenode

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Kubelet runs a group of fake nodes and the pods bound to them.
type Kubelet struct {
	opts        Options
	cni         poolPolicy // opts.CNI with its defaults
	client      kubernetes.Interface
	ec2         EC2API
	log         logr.Logger
	workDir     string
	tempWorkDir bool
	version     string

	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder

	podFactory, nodeFactory informers.SharedInformerFactory
	pods                    corelisters.PodLister
	nodeLister              corelisters.NodeLister
	queue                   workqueue.TypedRateLimitingInterface[queueKey]

	mu    sync.Mutex
	nodes map[string]*node       // by node name
	state map[string]*podState   // by namespace/name
	nets  map[string]*podNetwork // by pod IP, of the pods that run something

	// With Images: the Secrets and ConfigMaps pods' volumes and env read,
	// and the images unpacked so far, by digest.
	objFactory informers.SharedInformerFactory
	secrets    corelisters.SecretLister
	configMaps corelisters.ConfigMapLister
	imagesMu   sync.Mutex
	images     map[string]*unpackedImage

	api *kubeletAPI // serves logs; nil without Options.ClientCA

	cancel   context.CancelFunc
	workers  sync.WaitGroup
	stopOnce sync.Once
}

// queueKey is one unit of work: a pod (namespace/name), or a node's
// heartbeat or warm pool (the node's name).
type queueKey struct {
	kind keyKind
	name string
}

type keyKind uint8

const (
	podKey keyKind = iota
	nodeKey
	poolKey
)

func (k keyKind) String() string {
	return [...]string{"pod", "node", "pool"}[k]
}

// Start registers the nodes (adopting those a previous Kubelet of the same
// group left behind), then handles their pods until Stop. ctx bounds the
// start only.
func Start(ctx context.Context, opts Options) (*Kubelet, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = klog.FromContext(ctx)
	}
	cni, err := opts.CNI.policy()
	if err != nil {
		return nil, err
	}
	k := &Kubelet{
		opts:   opts,
		cni:    cni,
		ec2:    opts.EC2,
		log:    opts.Logger.WithName("fakenode").WithValues("group", opts.Group),
		nodes:  map[string]*node{},
		state:  map[string]*podState{},
		nets:   map[string]*podNetwork{},
		images: map[string]*unpackedImage{},
	}
	if k.client = opts.Client; k.client == nil {
		if k.client, err = kubernetes.NewForConfig(opts.Config); err != nil {
			return nil, fmt.Errorf("building a client: %w", err)
		}
	}
	if err := k.setUpWorkDir(); err != nil {
		return nil, err
	}
	if err := k.start(ctx); err != nil {
		k.Stop()
		return nil, err
	}
	return k, nil
}

func (k *Kubelet) setUpWorkDir() error {
	k.workDir = k.opts.WorkDir
	if k.workDir == "" {
		dir, err := os.MkdirTemp("", "kube-eip-fakenode-")
		if err != nil {
			return fmt.Errorf("creating work directory: %w", err)
		}
		k.workDir, k.tempWorkDir = dir, true
	}
	if err := os.MkdirAll(k.workDir, 0o755); err != nil {
		return fmt.Errorf("creating work directory: %w", err)
	}
	return nil
}

func (k *Kubelet) start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(logr.NewContext(context.WithoutCancel(ctx), k.log))
	k.cancel = cancel
	// Retries start fast (a pod waiting for an address should not wait
	// long) and stop growing at 30s, so a throttled EC2 or a full ENI does
	// not park a pod for the default limiter's 1000s.
	k.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[queueKey](100*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[queueKey]{Name: "fakenode-" + k.opts.Group},
	)
	k.broadcaster = record.NewBroadcaster(record.WithContext(runCtx))
	k.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.client.CoreV1().Events("")})
	k.recorder = k.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet"})

	k.version = "v0.0.0"
	if v, err := k.client.Discovery().ServerVersion(); err == nil {
		k.version = v.GitVersion
	}
	if err := k.registerNodes(ctx); err != nil {
		return err
	}
	if len(k.opts.ClientCA) > 0 {
		if err := k.startAPI(); err != nil {
			return err
		}
	}
	if err := k.startInformers(ctx, runCtx); err != nil {
		return err
	}
	if err := k.rebuild(ctx); err != nil {
		return err
	}
	for range k.opts.Workers {
		k.workers.Go(func() {
			for k.processNext(runCtx) {
			}
		})
	}
	for _, name := range k.NodeNames() {
		k.queue.Add(queueKey{kind: nodeKey, name: name})
		// Fills the warm pool of a new node, trims that of an adopted one.
		k.tendPool(name)
	}
	k.log.Info("fake nodes running", "nodes", k.NodeNames(), "prefixDelegation", k.opts.PrefixDelegation,
		"releaseImmediately", k.cni.releaseImmediately, "warmIPTarget", k.cni.warm, "minimumIPTarget", k.cni.minimum, "ipCooldown", k.cni.cooldown,
		"workDir", k.workDir)
	return nil
}

// stripManagedFields keeps the caches small; nothing here reads them.
func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

func (k *Kubelet) startInformers(ctx, runCtx context.Context) error {
	k.podFactory = informers.NewSharedInformerFactoryWithOptions(k.client, 0,
		informers.WithTransform(stripManagedFields),
		// Pods nobody has scheduled yet are none of a kubelet's business.
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName!=" }),
	)
	k.nodeFactory = informers.NewSharedInformerFactoryWithOptions(k.client, 0,
		informers.WithTransform(stripManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelFakeNode + "=" + k.opts.Group }),
	)
	podInformer := k.podFactory.Core().V1().Pods()
	k.pods = podInformer.Lister()
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    k.enqueuePod,
		UpdateFunc: func(_, obj any) { k.enqueuePod(obj) },
		DeleteFunc: k.enqueuePod,
	}); err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	nodeInformer := k.nodeFactory.Core().V1().Nodes()
	k.nodeLister = nodeInformer.Lister()
	if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		// Only deletions matter: the node's own worker keeps it fresh.
		DeleteFunc: k.enqueueNode,
	}); err != nil {
		return fmt.Errorf("watching nodes: %w", err)
	}
	if len(k.opts.Images) > 0 {
		if err := k.watchVolumeSources(); err != nil {
			return err
		}
		k.objFactory.Start(runCtx.Done())
		for typ, ok := range k.objFactory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("syncing the %v cache: %w", typ, context.Cause(ctx))
			}
		}
	}
	k.podFactory.Start(runCtx.Done())
	k.nodeFactory.Start(runCtx.Done())
	for typ, ok := range k.podFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("syncing the %v cache: %w", typ, context.Cause(ctx))
		}
	}
	for typ, ok := range k.nodeFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("syncing the %v cache: %w", typ, context.Cause(ctx))
		}
	}
	return nil
}

func (k *Kubelet) enqueuePod(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	_, ours := k.nodes[pod.Spec.NodeName]
	k.mu.Unlock()
	if ours {
		k.queue.Add(queueKey{kind: podKey, name: pod.Namespace + "/" + pod.Name})
	}
}

func (k *Kubelet) enqueueNode(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if n, ok := obj.(*corev1.Node); ok {
		k.queue.Add(queueKey{kind: nodeKey, name: n.Name})
	}
}

func (k *Kubelet) processNext(ctx context.Context) bool {
	key, shutdown := k.queue.Get()
	if shutdown {
		return false
	}
	defer k.queue.Done(key)
	var after time.Duration
	var err error
	switch key.kind {
	case nodeKey:
		after, err = k.syncNode(ctx, key.name)
	case poolKey:
		after, err = k.syncPool(ctx, key.name)
	default:
		after, err = k.syncPod(ctx, key.name)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		// Stopping: the next Kubelet picks the work up.
	case err != nil:
		k.log.Error(err, "sync failed, retrying", "kind", key.kind, "key", key.name)
		k.queue.AddRateLimited(key)
	case after > 0:
		k.queue.Forget(key)
		k.queue.AddAfter(key, after)
	default:
		k.queue.Forget(key)
	}
	return true
}

// Stop stops handling pods and nodes and kills the local processes. The
// nodes, their instances and the pods stay, so a later Start resumes.
func (k *Kubelet) Stop() {
	k.stopOnce.Do(func() {
		if k.cancel != nil {
			k.cancel()
		}
		if k.queue != nil {
			k.queue.ShutDown()
		}
		k.workers.Wait()
		if k.podFactory != nil {
			k.podFactory.Shutdown()
			k.nodeFactory.Shutdown()
		}
		k.mu.Lock()
		states := make([]*podState, 0, len(k.state))
		for _, st := range k.state {
			states = append(states, st)
		}
		k.mu.Unlock()
		for _, st := range states {
			st.mu.Lock()
			st.killProcesses(0)
			st.mu.Unlock()
		}
		for _, st := range states {
			st.waitProcesses()
			st.mu.Lock()
			if st.net != nil {
				st.net.close()
				st.net = nil
			}
			st.mu.Unlock()
		}
		if k.objFactory != nil {
			k.objFactory.Shutdown()
		}
		if k.api != nil {
			k.api.close()
		}
		if k.broadcaster != nil {
			k.broadcaster.Shutdown()
		}
		if k.tempWorkDir {
			if err := os.RemoveAll(k.workDir); err != nil {
				k.log.Error(err, "removing work directory", "dir", k.workDir)
			}
		}
	})
}

// NodeInfo describes one fake node and the EC2 resources behind it.
type NodeInfo struct {
	Name       string
	InstanceID string
	ENIID      string
	Zone       string
	SubnetID   string
	PrivateIP  string
}

// Nodes lists the nodes this Kubelet runs, by name.
func (k *Kubelet) Nodes() []NodeInfo {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]NodeInfo, 0, len(k.nodes))
	for _, n := range k.nodes {
		out = append(out, n.info())
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// NodeNames lists the names of the nodes this Kubelet runs.
func (k *Kubelet) NodeNames() []string {
	nodes := k.Nodes()
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}

// NodeSelector selects this Kubelet's nodes, for pods that must land there.
func (k *Kubelet) NodeSelector() map[string]string {
	return map[string]string{LabelFakeNode: k.opts.Group}
}

// WorkDir is where pods' volumes and process logs live.
func (k *Kubelet) WorkDir() string { return k.workDir }

// watchVolumeSources keeps Secrets and ConfigMaps cached, and sends a
// change to the pods of its namespace that run something, so that mounted
// files follow within a sync, as the kubelet's watch-based manager does.
func (k *Kubelet) watchVolumeSources() error {
	k.objFactory = informers.NewSharedInformerFactoryWithOptions(k.client, 0, informers.WithTransform(stripManagedFields))
	secrets := k.objFactory.Core().V1().Secrets()
	configMaps := k.objFactory.Core().V1().ConfigMaps()
	k.secrets, k.configMaps = secrets.Lister(), configMaps.Lister()
	changed := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if m, err := meta.Accessor(obj); err == nil {
			for _, key := range k.podsUsing(m.GetNamespace()) {
				k.queue.Add(queueKey{kind: podKey, name: key})
			}
		}
	}
	handler := cache.ResourceEventHandlerFuncs{AddFunc: changed, UpdateFunc: func(_, obj any) { changed(obj) }, DeleteFunc: changed}
	if _, err := secrets.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watching secrets: %w", err)
	}
	if _, err := configMaps.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("watching config maps: %w", err)
	}
	return nil
}
