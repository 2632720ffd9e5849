package webhook

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// Cache indexes the admission state needs.
const (
	indexStickyOwner = "spec.stickyOwner"
	indexClaim       = "metadata.annotations.claim"
)

// CacheState reads admission's State from an informer-backed reader.
type CacheState struct {
	Reader client.Reader
	// Namespace is kube-eip's own, where the binder publishes the
	// account's count (api.AccountConfigMap).
	Namespace string
}

var _ State = CacheState{}

// Pool implements State.
func (s CacheState) Pool(name string) (*v1alpha1.EIPPool, bool) {
	pool := &v1alpha1.EIPPool{}
	if err := s.Reader.Get(context.Background(), client.ObjectKey{Name: name}, pool); err != nil {
		return nil, false
	}
	return pool, true
}

// Pools implements State.
func (s CacheState) Pools() []v1alpha1.EIPPool {
	var list v1alpha1.EIPPoolList
	if err := s.Reader.List(context.Background(), &list); err != nil {
		return nil
	}
	return list.Items
}

// Reserved implements State. An error other than not-found counts as
// reserved: the create that follows is the real arbiter anyway.
func (s CacheState) Reserved(allocationID string) bool {
	err := s.Reader.Get(context.Background(), client.ObjectKey{Name: allocationID}, &v1alpha1.EIPReservation{})
	return !apierrors.IsNotFound(err)
}

// StickyReservation implements State.
func (s CacheState) StickyReservation(pool, owner string) (*v1alpha1.EIPReservation, bool) {
	var list v1alpha1.EIPReservationList
	if err := s.Reader.List(context.Background(), &list, client.MatchingFields{indexStickyOwner: owner}); err != nil {
		return nil, false
	}
	for i := range list.Items {
		if list.Items[i].Spec.Pool == pool && list.Items[i].DeletionTimestamp == nil {
			return &list.Items[i], true
		}
	}
	return nil, false
}

// ClaimInUse implements State. Every namespace is searched: a claim copied
// from another namespace's pod must not tie this pod to that pod's address.
func (s CacheState) ClaimInUse(claim string) bool {
	pods := podMetaList()
	if err := s.Reader.List(context.Background(), pods, client.MatchingFields{indexClaim: claim}); err != nil {
		return true // unsure: a fresh claim is always safe
	}
	return len(pods.Items) > 0
}

// AddressesHeld implements State. A managed pod carries the release
// finalizer from admission until the binder has given its address back, so
// the finalizer is what tells a pod that holds or waits for an address.
func (s CacheState) AddressesHeld(namespace string) int {
	pods := podMetaList()
	if err := s.Reader.List(context.Background(), pods, client.InNamespace(namespace)); err != nil {
		return 0 // the binder counts again before it allocates
	}
	held := 0
	for i := range pods.Items {
		if slices.Contains(pods.Items[i].Finalizers, api.FinalizerRelease) {
			held++
		}
	}
	return held
}

// Account implements State.
func (s CacheState) Account() (api.Account, bool) {
	if s.Namespace == "" {
		return api.Account{}, false
	}
	cm := &corev1.ConfigMap{}
	if err := s.Reader.Get(context.Background(), client.ObjectKey{Namespace: s.Namespace, Name: api.AccountConfigMap}, cm); err != nil {
		return api.Account{}, false
	}
	return api.ParseAccount(cm.Data)
}

// The webhook caches managed pods as metadata only: it reads nothing else
// of them, and a full pod informer would make the API server encode, and
// this process decode and keep, every status change of every managed pod.
func podMeta() *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}}
}

func podMetaList() *metav1.PartialObjectMetadataList {
	return &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}}
}

// Namespace reads a namespace from reader.
func Namespace(reader client.Reader) func(ctx context.Context, name string) (*corev1.Namespace, error) {
	return func(ctx context.Context, name string) (*corev1.Namespace, error) {
		ns := &corev1.Namespace{}
		if err := reader.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
			return nil, err
		}
		return ns, nil
	}
}

// LiveReservation reads a reservation from the API server; nil when it does
// not exist.
func LiveReservation(reader client.Reader) func(ctx context.Context, name string) (*v1alpha1.EIPReservation, error) {
	return func(ctx context.Context, name string) (*v1alpha1.EIPReservation, error) {
		res := &v1alpha1.EIPReservation{}
		if err := reader.Get(ctx, client.ObjectKey{Name: name}, res); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, err
		}
		return res, nil
	}
}
