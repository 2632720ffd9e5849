package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReservationMode mirrors the pod's kube-eip.io/mode for reserved addresses.
// +kubebuilder:validation:Enum=pool;sticky
type ReservationMode string

// Reservation modes.
const (
	ReservationModePool   ReservationMode = "pool"
	ReservationModeSticky ReservationMode = "sticky"
)

// EIPReservationSpec records which pod an address is held for. It is written
// once, at admission.
type EIPReservationSpec struct {
	// Pool is the EIPPool the address belongs to.
	Pool string `json:"pool"`
	// AllocationID is the reserved address's EC2 allocation id; it is also
	// the reservation's name, so an address can be reserved only once.
	AllocationID string `json:"allocationID"`
	// PublicIP is the reserved address.
	PublicIP string `json:"publicIP"`
	// Mode is the pod's mode: pool or sticky.
	Mode ReservationMode `json:"mode"`
	// PodNamespace is the namespace of the pod.
	PodNamespace string `json:"podNamespace"`
	// PodName is the pod's name; empty when the pod was created from
	// generateName and had no name yet at admission.
	// +optional
	PodName string `json:"podName,omitempty"`
	// Claim is the token admission wrote on the pod
	// (kube-eip.io/claim); the pod that carries it owns the reservation.
	Claim string `json:"claim"`
	// StickyOwner is "<namespace>/<pod name>" for sticky reservations: the
	// pod identity that gets this address back every time.
	// +optional
	StickyOwner string `json:"stickyOwner,omitempty"`
}

// ReservationPhase is where a reservation is in its life.
// +kubebuilder:validation:Enum=Reserved;Claimed;Bound;Releasing
type ReservationPhase string

// Reservation phases.
const (
	// ReservationReserved: made at admission, the pod not seen yet.
	ReservationReserved ReservationPhase = "Reserved"
	// ReservationClaimed: the pod carrying the claim token exists.
	ReservationClaimed ReservationPhase = "Claimed"
	// ReservationBound: the address is associated with the pod.
	ReservationBound ReservationPhase = "Bound"
	// ReservationReleasing: the pod is gone; the address is going back.
	ReservationReleasing ReservationPhase = "Releasing"
)

// EIPReservationStatus tracks the reservation's pod. The binder alone
// writes it.
type EIPReservationStatus struct {
	// Phase is Reserved until the pod appears, then Claimed, Bound, and
	// Releasing once the pod is gone.
	// +optional
	Phase ReservationPhase `json:"phase,omitempty"`
	// PodUID is the UID of the pod that claimed the reservation.
	// +optional
	PodUID string `json:"podUID,omitempty"`
	// PodName is the claiming pod's name (set for pods from generateName).
	// +optional
	PodName string `json:"podName,omitempty"`
	// AssociationID is the EC2 association the binder made of the address
	// with the claiming pod: the one association of it that is kube-eip's
	// to undo or move.
	// +optional
	AssociationID string `json:"associationID,omitempty"`
	// KeptFor is set while a sticky reservation waits for the next pod of
	// its name, and says how long it waits. Absent on one kept by an
	// earlier version, or for a pod removed without its finalizer: that
	// waits until a person deletes it.
	// +optional
	KeptFor *ReservationKeep `json:"keptFor,omitempty"`
	// Conditions of the reservation.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ReservationKeep is why a sticky reservation waits for a pod of its name.
type ReservationKeep struct {
	// Controller is the controller of the pod that last held it
	// ("<Kind>/<name>", shortened as the kube-eip.io/controller tag is),
	// empty for a pod without one. Only a StatefulSet brings a pod back
	// under its name: the reservation waits while it exists. One of a
	// ReplicaSet, DaemonSet or Job, or of no controller, is deleted after
	// the orphan grace; one of another kind (an operator's) waits for a
	// person.
	// +optional
	Controller string `json:"controller,omitempty"`
}

// EIPReservation holds one Elastic IP of a pool for one pod. Its name is the
// address's allocation id, so the API server itself refuses a second
// reservation of the same address, whichever webhook replica asks.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=eipr,categories=kube-eip
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Pool",type=string,JSONPath=`.spec.pool`
// +kubebuilder:printcolumn:name="Public IP",type=string,JSONPath=`.spec.publicIP`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.podNamespace`
// +kubebuilder:printcolumn:name="Pod",type=string,JSONPath=`.status.podName`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EIPReservation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is written once, at admission: which pod the address is for is
	// never rewritten, by anyone.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an EIPReservation's spec is written once, at admission, and cannot change"
	Spec   EIPReservationSpec   `json:"spec"`
	Status EIPReservationStatus `json:"status,omitempty"`
}

// EIPReservationList is a list of EIPReservations.
// +kubebuilder:object:root=true
type EIPReservationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EIPReservation `json:"items"`
}
