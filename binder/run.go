package binder

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/binder/cloud"
	"github.com/kube-eip/kube-eip/internal/owners"
)

// Options configures the binder process.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// EC2 is the EC2 client (rate-limited and instrumented: cloud.NewClient).
	EC2 cloud.API
	// ClusterName is written on, and required of, every address the binder
	// touches.
	ClusterName string
	// Workers bounds concurrent pod reconciles. Most of their time is spent
	// waiting for EC2's rate limits, so it is well above the core count.
	Workers int
	// SweepInterval is how often EC2 is compared with the cluster.
	SweepInterval time.Duration
	// OrphanGrace is how long an address must be without owner before the
	// sweep releases it.
	OrphanGrace time.Duration
	// ClaimTTL is how long a reservation waits for the pod it was made
	// for (DefaultClaimTTL when zero).
	ClaimTTL time.Duration
	// LeaderElection makes one replica of several do the work.
	LeaderElection bool
	// Namespace is kube-eip's own: its leader election lease, and where
	// the binder publishes its count of the account's addresses
	// (api.AccountConfigMap).
	Namespace string
	// MetricsAddr and HealthAddr serve /metrics and /healthz, /readyz; "0"
	// turns them off.
	MetricsAddr string
	HealthAddr  string
	Log         logr.Logger
}

// DefaultWorkers is the default number of concurrent pod reconciles.
const DefaultWorkers = 64

// Index names on the manager's cache.
const (
	indexUID          = "metadata.uid"
	indexPodNamespace = "spec.podNamespace"
	indexClaim        = "metadata.annotations.claim"
)

// Run binds until ctx ends.
func Run(ctx context.Context, opts Options) error {
	if opts.ClusterName == "" {
		return errors.New("the cluster name is required: it tags every address the binder owns")
	}
	if opts.EC2 == nil {
		return errors.New("an EC2 client is required")
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	log := opts.Log
	mgr, err := newManager(ctx, opts)
	if err != nil {
		return err
	}
	recorder := mgr.GetEventRecorder("kube-eip-binder")
	refusals := owners.New(mgr.GetAPIReader(), recorder, log.WithName("owners"))
	if err := mgr.Add(refusals); err != nil {
		return fmt.Errorf("adding the refusal reporter: %w", err)
	}
	b := New(Config{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		EC2:         opts.EC2,
		Recorder:    recorder,
		Refusals:    refusals,
		Namespace:   opts.Namespace,
		Cluster:     opts.ClusterName,
		OrphanGrace: opts.OrphanGrace,
		ClaimTTL:    opts.ClaimTTL,
		Log:         log.WithName("binder"),
	})
	if err := b.SetupWithManager(mgr, opts.Workers); err != nil {
		return err
	}
	// A new or changed pool gets its status (which the webhook reserves
	// from) at once rather than at the next periodic sweep.
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("pool-sweeper").
		For(&v1alpha1.EIPPool{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
			b.requestSweep()
			return reconcile.Result{}, nil
		})); err != nil {
		return fmt.Errorf("watching pools: %w", err)
	}
	if err := b.SetupNodesWithManager(mgr); err != nil {
		return err
	}
	if err := b.SetupFloatingWithManager(mgr); err != nil {
		return err
	}
	if err := b.SetupReservationsWithManager(mgr); err != nil {
		return fmt.Errorf("watching reservations: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return b.runSweeps(ctx, opts.SweepInterval)
	})); err != nil {
		return fmt.Errorf("adding the sweep: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(b.runStatus)); err != nil {
		return fmt.Errorf("adding the pool status writer: %w", err)
	}
	if opts.HealthAddr != "0" && opts.HealthAddr != "" {
		_ = mgr.AddHealthzCheck("ping", healthz.Ping)
		_ = mgr.AddReadyzCheck("inventory", readiness(mgr.Elected(), b.readyErr))
	}
	return mgr.Start(ctx)
}

// readiness is the binder's readiness check. The leader is ready once its
// first sweep has loaded EC2's addresses; a standby is ready as it is,
// waiting for the lease: otherwise a rolling update, which waits for the
// new pod to be ready before it stops the old one, would never finish,
// since the new pod leads only once the old one is gone.
func readiness(elected <-chan struct{}, leaderReady func() error) func(*http.Request) error {
	return func(*http.Request) error {
		select {
		case <-elected:
			return leaderReady()
		default:
			return nil
		}
	}
}

// scheme knows the kinds the binder reads and writes.
func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// newManager is the controller manager of the binder and of Uninstall:
// a cache of managed pods only, and the binder's indexes.
func newManager(ctx context.Context, opts Options) (manager.Manager, error) {
	mgr, err := ctrl.NewManager(opts.Config, ctrl.Options{
		Scheme:                        scheme(),
		Logger:                        opts.Log,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.HealthAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              "kube-eip-binder",
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{
			// Managed pods only: the cluster's other pods cost nothing.
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Pod{}: {Label: labels.SelectorFromSet(labels.Set{api.LabelManaged: "true"})},
				// The nodes' heartbeats, which floating addresses follow.
				&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{corev1.NamespaceNodeLease: {}}},
			},
			DefaultTransform: cache.TransformStripManagedFields(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the controller manager: %w", err)
	}
	if err := addIndexes(ctx, mgr); err != nil {
		return nil, err
	}
	return mgr, nil
}

// SetupWithManager registers the pod controller: managed pods, pods the
// sweep found drifted, and the pods of a namespace whose labels or
// annotations changed, or of any pool that changed, since authorization
// reads them.
func (b *Binder) SetupWithManager(mgr ctrl.Manager, workers int) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("pod-binder").
		For(&corev1.Pod{}).
		WatchesRawSource(source.Channel(b.requeue, &handler.EnqueueRequestForObject{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, ns client.Object) []reconcile.Request {
			return b.podRequests(ctx, client.InNamespace(ns.GetName()))
		}), builder.WithPredicates(predicate.Or(predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&v1alpha1.EIPPool{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
			return b.podRequests(ctx)
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			// Failed binds come back with backoff, from 50 ms to 2 min;
			// nothing is ever dropped.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](50*time.Millisecond, 2*time.Minute),
		}).
		Complete(b)
}

// SetupNodesWithManager registers the node controller: nodes as they
// join, change labels or taints, and go; nodes the sweep requeued; and
// every node when a pool changes.
func (b *Binder) SetupNodesWithManager(mgr ctrl.Manager) error {
	taintsChanged := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, okOld := e.ObjectOld.(*corev1.Node)
		n, okNew := e.ObjectNew.(*corev1.Node)
		return okOld && okNew && !equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints)
	}}
	return ctrl.NewControllerManagedBy(mgr).
		Named("node-binder").
		For(&corev1.Node{}, builder.WithPredicates(predicate.Or(predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}, taintsChanged))).
		WatchesRawSource(source.Channel(b.nodeRequeue, &handler.EnqueueRequestForObject{})).
		Watches(&v1alpha1.EIPPool{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
			var list corev1.NodeList
			if err := b.Client.List(ctx, &list); err != nil {
				return nil
			}
			reqs := make([]reconcile.Request, len(list.Items))
			for i := range list.Items {
				reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
			}
			return reqs
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 4,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 2*time.Minute),
		}).
		Complete(nodeReconciler{b})
}

// SetupFloatingWithManager registers the floating controller, one
// reconcile per pool: pools as they change, and the floating pools
// whenever a node or a node's Lease changes.
func (b *Binder) SetupFloatingWithManager(mgr ctrl.Manager) error {
	floatingPools := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list v1alpha1.EIPPoolList
		if err := b.Client.List(ctx, &list); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			if list.Items[i].Spec.Floating != nil {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return reqs
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("floating").
		For(&v1alpha1.EIPPool{}).
		Watches(&corev1.Node{}, floatingPools).
		Watches(&coordinationv1.Lease{}, floatingPools).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 2,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](50*time.Millisecond, 30*time.Second),
		}).
		Complete(floatingReconciler{b})
}

// podRequests lists the managed pods that opts select, as requests.
func (b *Binder) podRequests(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list corev1.PodList
	if err := b.Client.List(ctx, &list, opts...); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return reqs
}

// cacheIndex is an index of the manager's cache.
type cacheIndex struct {
	obj     client.Object
	field   string
	extract client.IndexerFunc
}

// cacheIndexes are the indexes the binder reads its cache by: reservations
// by the namespace they are for, pods by UID and by claim. The tests' fake
// client is built with the same.
var cacheIndexes = []cacheIndex{
	{&v1alpha1.EIPReservation{}, indexPodNamespace, func(o client.Object) []string {
		return []string{o.(*v1alpha1.EIPReservation).Spec.PodNamespace}
	}},
	{&corev1.Pod{}, indexUID, func(o client.Object) []string {
		return []string{string(o.GetUID())}
	}},
	{&corev1.Pod{}, indexClaim, func(o client.Object) []string {
		if claim := o.GetAnnotations()[api.AnnotationClaim]; claim != "" {
			return []string{claim}
		}
		return nil
	}},
}

func addIndexes(ctx context.Context, mgr ctrl.Manager) error {
	for _, ix := range cacheIndexes {
		if err := mgr.GetFieldIndexer().IndexField(ctx, ix.obj, ix.field, ix.extract); err != nil {
			return fmt.Errorf("indexing %T by %s: %w", ix.obj, ix.field, err)
		}
	}
	return nil
}

func (b *Binder) readyErr() error {
	select {
	case <-b.ready:
		return nil
	default:
		return errors.New("the first sweep has not loaded the addresses yet")
	}
}
