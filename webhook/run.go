package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/internal/owners"
	"github.com/kube-eip/kube-eip/webhook/server"
)

// Options configures the webhook process.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// Addr is the HTTPS listen address (":9443").
	Addr string
	// Certs supplies the serving certificate.
	Certs certs.Source
	// Runnables are added to the controller manager, for a certificate
	// source whose work needs the manager's leader election, as the
	// self-signed source's Issuer does.
	Runnables []manager.Runnable
	// Inject is what goes into pods.
	Inject InjectConfig
	// LeaderElection makes one replica run the Runnables; every replica
	// serves admission. Without Runnables there is nothing to elect for.
	LeaderElection bool
	// Namespace is kube-eip's own: its leader election lease, and the
	// binder's count of the account's addresses (api.AccountConfigMap).
	Namespace string
	// Log is the process logger.
	Log logr.Logger
}

// Webhook is a running webhook process.
type Webhook struct {
	server *server.Server
	group  *errgroup.Group
}

// Addr is the address the webhook serves on.
func (w *Webhook) Addr() string { return w.server.Addr() }

// Wait blocks until the webhook has stopped.
func (w *Webhook) Wait() error { return w.group.Wait() }

// Run serves admission until ctx ends.
func Run(ctx context.Context, opts Options) error {
	w, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	return w.Wait()
}

// Scheme knows the types the webhook reads.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// Start brings up the caches and the HTTPS server; it returns once the
// port is bound. The server reports ready once the caches synced.
func Start(ctx context.Context, opts Options) (*Webhook, error) {
	if opts.Inject.Image == "" {
		return nil, errors.New("the image to inject (the kube-eip image running the wait subcommand) is required")
	}
	if opts.Inject.WaitTimeout == 0 {
		opts.Inject.WaitTimeout = 10 * time.Minute
	}
	log := opts.Log
	ctx = logr.NewContext(ctx, log)
	scheme := Scheme()
	mgr, err := ctrl.NewManager(opts.Config, ctrl.Options{
		Scheme:                  scheme,
		Logger:                  log,
		Metrics:                 metricsserver.Options{BindAddress: "0"}, // served by the webhook server
		HealthProbeBindAddress:  "0",
		LeaderElection:          opts.LeaderElection && len(opts.Runnables) > 0,
		LeaderElectionID:        "kube-eip-webhook",
		LeaderElectionNamespace: opts.Namespace,
		Controller:              config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:                   cache.Options{ByObject: cached(opts.Namespace)},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the controller manager: %w", err)
	}
	if err := addIndexes(ctx, mgr); err != nil {
		return nil, err
	}
	// Admission reads these from the cache; make them part of the start
	// (and of readiness) rather than of the first request.
	informed := []client.Object{&v1alpha1.EIPPool{}, &v1alpha1.EIPReservation{}, &corev1.Namespace{}, podMeta()}
	if opts.Namespace != "" {
		informed = append(informed, &corev1.ConfigMap{})
	}
	for _, obj := range informed {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return nil, fmt.Errorf("preparing the %T informer: %w", obj, err)
		}
	}
	for _, r := range opts.Runnables {
		if err := mgr.Add(r); err != nil {
			return nil, fmt.Errorf("adding %T to the controller manager: %w", r, err)
		}
	}

	// Refused pods are reported on the workload the user applied.
	refusals := owners.New(mgr.GetAPIReader(), mgr.GetEventRecorder("kube-eip-webhook"), log.WithName("owners"))
	if err := mgr.Add(refusals); err != nil {
		return nil, fmt.Errorf("adding the refusal reporter: %w", err)
	}
	state := CacheState{Reader: mgr.GetCache(), Namespace: opts.Namespace}
	handler := NewHandler(Handler{
		State:       state,
		Reservation: LiveReservation(mgr.GetAPIReader()),
		Namespaces:  Namespace(mgr.GetCache()),
		Reserver:    APIReserver{Client: mgr.GetClient()},
		Config:      opts.Inject,
		Refusals:    refusals,
	})
	var synced atomic.Bool
	srv, err := server.Start(ctx, server.Options{
		Addr:  opts.Addr,
		Certs: opts.Certs,
		Handlers: map[string]http.Handler{
			Path:          serve(handler, log.WithName("admission")),
			PoolsPath:     serve(&PoolHandler{Pools: state}, log.WithName("pools")),
			WorkloadsPath: serve(&WorkloadHandler{State: state, Namespaces: Namespace(mgr.GetCache())}, log.WithName("workloads")),
		},
		Readiness: []func() error{func() error {
			if !synced.Load() {
				return errors.New("informer caches not synced yet")
			}
			return nil
		}},
		Log: log.WithName("server"),
	})
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mgr.Start(gctx) })
	g.Go(func() error {
		if mgr.GetCache().WaitForCacheSync(gctx) {
			synced.Store(true)
		}
		return nil
	})
	g.Go(srv.Wait)
	return &Webhook{server: srv, group: g}, nil
}

// cached narrows what the cache holds of kinds the cluster has many of:
// only pods that went through admission, and only the account's
// ConfigMap of kube-eip's own namespace.
func cached(namespace string) map[client.Object]cache.ByObject {
	by := map[client.Object]cache.ByObject{
		podMeta(): {Label: labels.SelectorFromSet(labels.Set{api.LabelManaged: "true"})},
	}
	if namespace != "" {
		by[&corev1.ConfigMap{}] = cache.ByObject{
			Namespaces: map[string]cache.Config{namespace: {}},
			Field:      fields.OneTermEqualSelector("metadata.name", api.AccountConfigMap),
		}
	}
	return by
}

// serve is h as an HTTP handler of admission reviews, logging to log.
func serve(h admission.Handler, log logr.Logger) http.Handler {
	return &admission.Webhook{Handler: h, LogConstructor: func(_ logr.Logger, req *admission.Request) logr.Logger {
		return admission.DefaultLogConstructor(log, req)
	}}
}

func addIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.EIPReservation{}, indexStickyOwner, func(o client.Object) []string {
		if owner := o.(*v1alpha1.EIPReservation).Spec.StickyOwner; owner != "" {
			return []string{owner}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing reservations by sticky owner: %w", err)
	}
	if err := idx.IndexField(ctx, podMeta(), indexClaim, func(o client.Object) []string {
		if claim := o.GetAnnotations()[api.AnnotationClaim]; claim != "" {
			return []string{claim}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing pods by claim: %w", err)
	}
	return nil
}
