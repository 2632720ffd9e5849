package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReleasePolicy says what becomes of a pool's address when its pod is gone.
// +kubebuilder:validation:Enum=Retain;Release
type ReleasePolicy string

const (
	// ReleasePolicyRetain returns the address to the pool.
	ReleasePolicyRetain ReleasePolicy = "Retain"
	// ReleasePolicyRelease gives the address back to AWS.
	ReleasePolicyRelease ReleasePolicy = "Release"
)

// EIPPoolSpec says which Elastic IPs belong to the pool and who may use them.
// +kubebuilder:validation:XValidation:rule="!(has(self.nodeSelector) && has(self.namespaceSelector))",message="a pool serves pods (namespaceSelector) or nodes (nodeSelector), not both"
// +kubebuilder:validation:XValidation:rule="!has(self.nodeSelector) || !has(self.stickyTag)",message="stickyTag pins addresses to pods; a node pool cannot have it"
// +kubebuilder:validation:XValidation:rule="!has(self.startupTaint) || has(self.nodeSelector)",message="startupTaint is removed from nodes; it needs nodeSelector"
// +kubebuilder:validation:XValidation:rule="has(self.nodeSelector) == has(oldSelf.nodeSelector)",message="a pool cannot switch between serving pods and serving nodes; create another pool"
// +kubebuilder:validation:XValidation:rule="!has(self.floating) || has(self.nodeSelector)",message="floating addresses move between nodes; floating needs nodeSelector"
// +kubebuilder:validation:XValidation:rule="!has(self.floating) || !has(self.startupTaint)",message="a floating pool's nodes do not each get an address; startupTaint is for node pools that are not floating"
// +kubebuilder:validation:XValidation:rule="has(self.floating) == has(oldSelf.floating)",message="a node pool cannot switch between floating and one address per node; create another pool"
type EIPPoolSpec struct {
	// TagSelector lists the EC2 tags an address must carry to belong to the
	// pool. All must match; an empty value means the key must exist. Keys
	// under kube-eip.io/ are kube-eip's own, written on the addresses it
	// allocates for pods, which are never a pool's.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=20
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('kube-eip.io/'))",message="tagSelector may not name kube-eip.io/ keys: kube-eip writes them on the addresses it allocates for pods, which are never a pool's"
	TagSelector map[string]string `json:"tagSelector"`

	// NamespaceSelector selects the namespaces whose pods may draw from the
	// pool. Unset selects none; an empty selector ({}) selects all.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// NodeSelector makes the pool a node pool: every node it selects gets
	// one of its addresses on the primary private IP of its primary
	// network interface, and keeps it until the node is gone. A pool
	// serves pods or nodes, never both, and cannot switch.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// StartupTaint is the key of a taint the nodes of a node pool register
	// with (for example with the kubelet's --register-with-taints): the
	// binder removes it once the node's address is associated, so that
	// workloads which must leave from a known address are scheduled only
	// where it is.
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	// +optional
	StartupTaint string `json:"startupTaint,omitempty"`

	// Floating makes a node pool's addresses float: instead of one per
	// node, each of the pool's addresses is kept on one healthy node of
	// those nodeSelector selects, and moves to another when that node stops
	// renewing its Lease, turns NotReady, is cordoned or drained, or goes.
	// +optional
	Floating *FloatingSpec `json:"floating,omitempty"`

	// ReleasePolicy is what happens to an address when its pod or node is gone:
	// Retain returns it to the pool, Release gives it back to AWS.
	// +kubebuilder:default=Retain
	// +optional
	ReleasePolicy ReleasePolicy `json:"releasePolicy,omitempty"`

	// StickyTag, when set, pins addresses to pod identities: an address whose
	// tag StickyTag has the value "<namespace>/<pod name>" is only ever given
	// to that pod (sticky mode). This is how addresses pre-tagged for the
	// aws-pod-eip-controller's fixed-tag-value mode keep their pods.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	StickyTag string `json:"stickyTag,omitempty"`

	// Growth lets the pool allocate new tagged addresses when it runs low.
	// +optional
	Growth *PoolGrowth `json:"growth,omitempty"`
}

// PoolGrowth allocates addresses for a pool from a public IPv4 pool.
// +kubebuilder:validation:XValidation:rule="!has(self.warm) || self.warm <= self.maxAddresses",message="warm cannot exceed maxAddresses"
type PoolGrowth struct {
	// PublicIPv4Pool is where new addresses come from: "amazon" or a BYOIP
	// pool id (ipv4pool-ec2-…).
	// +kubebuilder:validation:Pattern=`^(amazon|ipv4pool-ec2-[0-9a-f]{17})$`
	// +kubebuilder:default=amazon
	// +optional
	PublicIPv4Pool string `json:"publicIPv4Pool,omitempty"`

	// NetworkBorderGroup is the network border group that the addresses
	// kept warm are allocated in: a Local Zone's (us-east-1-bos-1, say) for
	// pods that run there. Empty means the region's own. An address taken
	// for a node of a node pool is always allocated in the node's group.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z0-9-]+$`
	// +optional
	NetworkBorderGroup string `json:"networkBorderGroup,omitempty"`

	// MaxAddresses caps the pool's size, counting addresses it did not
	// allocate itself.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxAddresses int32 `json:"maxAddresses"`

	// Warm is how many free addresses to keep ready.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Warm int32 `json:"warm,omitempty"`
}

// FloatingSpec tunes how fast a floating address leaves a failed node.
type FloatingSpec struct {
	// MissedRenewals is how many renewals of its Lease in kube-node-lease
	// the holding node may miss before the address moves. The kubelet
	// renews every quarter of the Lease's duration: 10 s by default, so the
	// default 2 moves an address about 20 s after the node's last
	// heartbeat, where the node controller would mark it NotReady after
	// 40 s and evict its pods minutes later.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=12
	// +kubebuilder:default=2
	// +optional
	MissedRenewals int32 `json:"missedRenewals,omitempty"`
}

// PoolAddress is one Elastic IP of a pool, as last seen in EC2.
type PoolAddress struct {
	// AllocationID is the address's EC2 allocation id.
	AllocationID string `json:"allocationID"`
	// PublicIP is the address.
	PublicIP string `json:"publicIP"`
	// NetworkBorderGroup is the network border group of the address: it
	// can be associated only with holders in that group's zones.
	// +optional
	NetworkBorderGroup string `json:"networkBorderGroup,omitempty"`
	// StickyOwner is "<namespace>/<pod name>" when the address's StickyTag
	// pins it to a pod identity.
	// +optional
	StickyOwner string `json:"stickyOwner,omitempty"`
	// Node is the node that holds the address, in a node pool.
	// +optional
	Node string `json:"node,omitempty"`
	// AssociatedElsewhere is true when EC2 shows the address associated
	// with something kube-eip did not bind; such an address is never
	// handed out.
	// +optional
	AssociatedElsewhere bool `json:"associatedElsewhere,omitempty"`
}

// EIPPoolStatus is the pool as the binder last saw it in EC2.
type EIPPoolStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Total counts the addresses that belong to the pool.
	// +optional
	Total int32 `json:"total"`
	// Free counts addresses that can be reserved now.
	// +optional
	Free int32 `json:"free"`
	// Reserved counts addresses held for pods not bound yet.
	// +optional
	Reserved int32 `json:"reserved"`
	// Bound counts addresses associated with their pods.
	// +optional
	Bound int32 `json:"bound"`
	// Addresses lists the pool's addresses.
	// +listType=map
	// +listMapKey=allocationID
	// +optional
	Addresses []PoolAddress `json:"addresses,omitempty"`
	// LastSyncTime is when the binder last read the pool from EC2.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// Conditions: Ready (the pool was read from EC2), Exhausted (no free
	// address, or in a node pool a node without one), Overlap (addresses
	// another pool selects too).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Pool condition types.
const (
	PoolConditionReady     = "Ready"
	PoolConditionExhausted = "Exhausted"
	// PoolConditionOverlap is true while addresses the pool selects are
	// selected by another pool too: no pool serves them until an admin
	// resolves it.
	PoolConditionOverlap = "Overlap"
)

// EIPPool is a set of Elastic IPs, selected by EC2 tags, that pods of the
// selected namespaces draw from.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=eipp,categories=kube-eip
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.total`
// +kubebuilder:printcolumn:name="Free",type=integer,JSONPath=`.status.free`
// +kubebuilder:printcolumn:name="Reserved",type=integer,JSONPath=`.status.reserved`
// +kubebuilder:printcolumn:name="Bound",type=integer,JSONPath=`.status.bound`
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.releasePolicy`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EIPPoolSpec   `json:"spec"`
	Status EIPPoolStatus `json:"status,omitempty"`
}

// EIPPoolList is a list of EIPPools.
// +kubebuilder:object:root=true
type EIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EIPPool `json:"items"`
}
