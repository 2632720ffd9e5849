package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"golang.org/x/sync/errgroup"

	// The issuer implementations the Issuer controllers set up.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// controllerNames are the loops run: Issuers and ClusterIssuers of the
// SelfSigned and CA kinds, the approver (without it requests stay
// unapproved) and every step of a Certificate's issuance. Each package
// registers its loop with controller.Known when imported. Left out: ACME,
// Vault, Venafi (they dial out), the ingress and Gateway shims, and
// CertificateSigningRequests.
var controllerNames = []string{
	issuers.ControllerName,
	clusterissuers.ControllerName,
	approver.ControllerName,
	crselfsigned.CRControllerName,
	crca.CRControllerName,
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
}

// workers per loop, cert-manager's default.
const workers = 5

// controllers are cert-manager's control loops over shared informers.
type controllers struct {
	base  *controller.Context
	loops map[string]controller.Interface
	// synced is closed once every informer the loops use has synced.
	synced chan struct{}
}

func newControllers(ctx context.Context, o options) (*controllers, error) {
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig: o.Kubeconfig,
		// Used only when the API server has no priority and fairness.
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: o.ClusterResourceNamespace,
			// Ambient credentials would reach for cloud metadata services.
			ClusterIssuerAmbientCredentials: false,
			IssuerAmbientCredentials:        false,
		},
		// cert-manager's defaults.
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("building cert-manager's controller context: %w", err)
	}
	// Every Context the factory builds shares these informer factories.
	base, err := factory.Build()
	if err != nil {
		return nil, err
	}
	c := &controllers{base: base, loops: map[string]controller.Interface{}, synced: make(chan struct{})}
	for _, name := range controllerNames {
		newLoop, ok := controller.Known()[name]
		if !ok {
			return nil, fmt.Errorf("cert-manager has no controller %q", name)
		}
		if c.loops[name], err = newLoop(factory); err != nil {
			return nil, fmt.Errorf("setting up controller %s: %w", name, err)
		}
	}
	return c, nil
}

// run starts the informers and the loops and returns when ctx ends or a
// loop fails.
func (c *controllers) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for name, loop := range c.loops {
		g.Go(func() error {
			logf.FromContext(ctx).V(logf.DebugLevel).Info("starting controller", "controller", name)
			if err := loop.Run(workers, ctx); err != nil {
				return fmt.Errorf("controller %s: %w", name, err)
			}
			return nil
		})
	}
	// After the loops were built: they ask the factories for informers.
	c.base.SharedInformerFactory.Start(ctx.Done())
	c.base.KubeSharedInformerFactory.Start(ctx.Done())
	g.Go(func() error {
		if !allTrue(c.base.SharedInformerFactory.WaitForCacheSync(ctx.Done())) ||
			!allTrue(c.base.KubeSharedInformerFactory.WaitForCacheSync(ctx.Done())) {
			return nil // stopping before the caches synced
		}
		close(c.synced)
		return nil
	})
	err := g.Wait()
	c.base.KubeSharedInformerFactory.Shutdown()
	c.base.SharedInformerFactory.Shutdown()
	return err
}

func allTrue[K comparable](synced map[K]bool) bool {
	for _, ok := range synced {
		if !ok {
			return false
		}
	}
	return true
}
