package binder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/binder/cloud"
)

// What Uninstall may touch beyond the binder's own work: its Deployment,
// to stop it, and kube-eip's webhook configurations, to stop admission.
//
// +kubebuilder:rbac:groups=apps,namespace=kube-eip-system,resources=deployments,verbs=get;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=delete,resourceNames=kube-eip-webhook

// UninstallOptions configures Uninstall.
type UninstallOptions struct {
	// Config reaches the API server.
	Config *rest.Config
	// EC2 is the EC2 client.
	EC2 cloud.API
	// ClusterName is the binder's --cluster-name: only addresses tagged
	// with it are touched.
	ClusterName string
	// Namespace is kube-eip's own, where BinderDeployment runs.
	Namespace string
	// BinderDeployment is stopped (scaled to zero) before anything is
	// released, so that no binder binds again behind Uninstall's back.
	BinderDeployment string
	// WebhookConfiguration names kube-eip's mutating and validating webhook
	// configurations, deleted first so that no new pod gets kube-eip's
	// finalizer once nothing is left to remove it.
	WebhookConfiguration string
	// StopTimeout bounds the wait for the binder's pods to go (default 2m).
	StopTimeout time.Duration
	Log         logr.Logger
}

// UninstallReport is what Uninstall did.
type UninstallReport struct {
	// Pods lost kube-eip's finalizer and their address.
	Pods int
	// Released are addresses kube-eip had allocated (auto and sticky),
	// given back to AWS.
	Released int
	// Disassociated are pool addresses taken off their pods; they stay
	// allocated, and in their pools, for a reinstall.
	Disassociated int
	// Reservations deleted.
	Reservations int
}

// Uninstall takes kube-eip out of the cluster without leaving an address
// behind or a pod that cannot be deleted. It is the chart's pre-delete
// hook, and safe to run again after a failure:
//
//  1. Admission stops: kube-eip's webhook configurations are deleted, so
//     no pod created from now on carries the finalizer.
//  2. The binder stops: its Deployment is scaled to zero and Uninstall
//     waits until its pods are gone.
//  3. Every managed pod's address is released as the binder would on the
//     pod's deletion (auto addresses to AWS, pool addresses to their pool),
//     and its finalizer and address labels removed. The pods keep running.
//  4. What is left of kube-eip's in EC2 is settled: addresses it allocated
//     (sticky ones kept for a StatefulSet's pod names included) are
//     released, since no one would ever release them after; pool addresses
//     kube-eip associated are disassociated and stay allocated, since
//     they are the admin's (often allow-listed) addresses, kept by their
//     pools; reservations are deleted.
//
// Addresses not tagged with the cluster's name are never touched.
func Uninstall(ctx context.Context, opts UninstallOptions) (UninstallReport, error) {
	var report UninstallReport
	if opts.ClusterName == "" {
		return report, errors.New("the cluster name is required: only addresses tagged with it are released")
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 2 * time.Minute
	}
	log := opts.Log
	direct, err := client.New(opts.Config, client.Options{Scheme: scheme()})
	if err != nil {
		return report, fmt.Errorf("creating a client: %w", err)
	}
	if err := stopAdmission(ctx, direct, opts.WebhookConfiguration); err != nil {
		return report, err
	}
	log.Info("admission stopped", "webhookConfiguration", opts.WebhookConfiguration)
	if err := stopBinder(ctx, direct, opts.Namespace, opts.BinderDeployment, opts.StopTimeout); err != nil {
		return report, err
	}
	log.Info("binder stopped", "deployment", opts.Namespace+"/"+opts.BinderDeployment)

	mgr, err := newManager(ctx, Options{Config: opts.Config, Namespace: opts.Namespace, MetricsAddr: "0", HealthAddr: "0", Log: log})
	if err != nil {
		return report, err
	}
	mgrCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	defer func() {
		stop()
		// Stopping flushes the events; the manager's error is then ctx's.
		if err := <-done; err != nil && ctx.Err() == nil {
			log.Error(err, "the uninstall's controller manager")
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return report, fmt.Errorf("the cache did not sync: %w", ctx.Err())
	}
	b := New(Config{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		EC2:       opts.EC2,
		Recorder:  mgr.GetEventRecorder("kube-eip-uninstall"),
		Namespace: opts.Namespace,
		Cluster:   opts.ClusterName,
		Log:       log.WithName("binder"),
	})
	var pods corev1.PodList
	if err := mgr.GetAPIReader().List(ctx, &pods, client.MatchingLabels{api.LabelManaged: "true"}); err != nil {
		return report, fmt.Errorf("listing managed pods: %w", err)
	}
	return b.letGo(ctx, pods.Items)
}

// letGo releases the address of every pod as the pod's deletion would,
// drops kube-eip's finalizer and address labels from it, and then settles
// what is left (settle). The binder must be stopped. The report counts
// what kube-eip held before: all of it is let go once letGo succeeds.
func (b *Binder) letGo(ctx context.Context, pods []corev1.Pod) (UninstallReport, error) {
	var report UninstallReport
	if _, _, err := b.loadInventory(ctx); err != nil {
		return report, err
	}
	reserved, err := b.reservations(ctx)
	if err != nil {
		return report, err
	}
	for _, a := range b.inv.all() {
		switch {
		case allocatedByUs(a, b.Cluster):
			report.Released++
		case ourAssociation(a, reserved[a.AllocationID], b.Cluster):
			report.Disassociated++
		}
	}
	report.Reservations = len(reserved)
	for i := range pods {
		pod := &pods[i]
		if err := b.release(ctx, pod); err != nil {
			return report, fmt.Errorf("releasing the address of pod %s: %w", owner(pod), err)
		}
		if err := b.dropFinalizer(ctx, pod); err != nil {
			return report, fmt.Errorf("pod %s: %w", owner(pod), err)
		}
		report.Pods++
	}
	return report, b.settle(ctx)
}

// allocatedByUs reports whether kube-eip allocated the address for a pod
// (auto or sticky): its claim tag for this cluster.
func allocatedByUs(a Address, cluster string) bool {
	return holderKind(a.Tags, cluster) == api.HolderPod && a.Tags[api.TagClaim] != ""
}

// reservations are the reservations by name (their address's allocation
// id), read from the API server.
func (b *Binder) reservations(ctx context.Context) (map[string]*v1alpha1.EIPReservation, error) {
	var list v1alpha1.EIPReservationList
	if err := b.APIReader.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing reservations: %w", err)
	}
	reserved := make(map[string]*v1alpha1.EIPReservation, len(list.Items))
	for i := range list.Items {
		reserved[list.Items[i].Name] = &list.Items[i]
	}
	return reserved, nil
}

// settle releases what kube-eip allocated, takes pool addresses off what
// kube-eip associated them with, and deletes the reservations, once no
// pod holds anything.
func (b *Binder) settle(ctx context.Context) error {
	if _, _, err := b.loadInventory(ctx); err != nil {
		return err
	}
	reserved, err := b.reservations(ctx)
	if err != nil {
		return err
	}
	for _, a := range b.inv.all() {
		switch {
		case allocatedByUs(a, b.Cluster):
			if err := b.releaseOwn(ctx, a); err != nil {
				return err
			}
		case ourAssociation(a, reserved[a.AllocationID], b.Cluster):
			if err := b.disassociate(ctx, a); err != nil {
				return err
			}
		}
	}
	for _, res := range reserved {
		if err := b.Client.Delete(ctx, res); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting reservation %s: %w", res.Name, err)
		}
	}
	return nil
}

// stopAdmission deletes kube-eip's webhook configurations.
func stopAdmission(ctx context.Context, c client.Client, name string) error {
	if name == "" {
		return errors.New("the webhook configuration's name is required")
	}
	for _, obj := range []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}},
	} {
		if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting webhook configuration %s: %w", name, err)
		}
	}
	return nil
}

// stopBinder scales the binder's Deployment to zero and waits until none
// of its pods is left, terminating ones included: a binder that is still
// shutting down could bind once more.
func stopBinder(ctx context.Context, c client.Client, namespace, name string, timeout time.Duration) error {
	if name == "" {
		return errors.New("the binder Deployment's name is required")
	}
	var d appsv1.Deployment
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &d)
	if apierrors.IsNotFound(err) {
		return nil // gone already (a second run)
	}
	if err != nil {
		return fmt.Errorf("reading Deployment %s/%s: %w", namespace, name, err)
	}
	if err := c.Patch(ctx, &d, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"replicas":0}}`))); err != nil {
		return fmt.Errorf("scaling Deployment %s/%s to zero: %w", namespace, name, err)
	}
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return fmt.Errorf("the selector of Deployment %s/%s: %w", namespace, name, err)
	}
	var left int
	err = wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return false, err
		}
		left = len(pods.Items)
		return left == 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the %d pods of Deployment %s/%s to go: %w", left, namespace, name, err)
	}
	return nil
}
