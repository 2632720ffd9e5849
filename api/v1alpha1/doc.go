// Package v1alpha1 is the kube-eip.io/v1alpha1 API group: EIPPool, the
// addresses a team may draw from, and EIPReservation, one address held for
// one pod.
// +kubebuilder:object:generate=true
// +groupName=kube-eip.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupVersion is the API group and version of this package.
var GroupVersion = schema.GroupVersion{Group: "kube-eip.io", Version: "v1alpha1"}

var (
	// SchemeBuilder registers this package's types.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds this package's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
