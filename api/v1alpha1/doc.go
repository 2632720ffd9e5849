// Package v1alpha1 is the kube-eip.io/v1alpha1 API group: EIPPool, the
// addresses a team may draw from, and EIPReservation, one address held for
// one pod.
// +kubebuilder:object:generate=true
// +groupName=kube-eip.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of this package.
var GroupVersion = schema.GroupVersion{Group: "kube-eip.io", Version: "v1alpha1"}

var schemeBuilder = runtime.NewSchemeBuilder(func(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &EIPPool{}, &EIPPoolList{}, &EIPReservation{}, &EIPReservationList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
})

// AddToScheme adds this package's types to a scheme.
var AddToScheme = schemeBuilder.AddToScheme
