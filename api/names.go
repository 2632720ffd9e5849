// Package api holds kube-eip's user-facing contract: the pod annotations it
// reads, the labels, annotations and condition it writes, and the names the
// webhook and binder share. Types of the kube-eip.io API group live in
// api/v1alpha1.
package api

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Prefix starts every key kube-eip owns on a pod.
const Prefix = "kube-eip.io/"

// Annotations a user sets on a pod (or its template).
const (
	// AnnotationMode asks for an Elastic IP: auto, pool or sticky.
	AnnotationMode = Prefix + "mode"
	// AnnotationPool names the EIPPool to draw from (pool, sticky).
	AnnotationPool = Prefix + "pool"
	// AnnotationPublicIPv4Pool is the source of an auto address: "amazon"
	// or a BYOIP pool id (ipv4pool-ec2-…).
	AnnotationPublicIPv4Pool = Prefix + "public-ipv4-pool"
)

// Mode is how a pod's address is obtained and what happens to it after.
type Mode string

const (
	// ModeAuto allocates a new address for the pod and releases it when the
	// pod is gone.
	ModeAuto Mode = "auto"
	// ModePool takes a free address of an EIPPool and returns it when the
	// pod is gone.
	ModePool Mode = "pool"
	// ModeSticky ties the address to the pod's identity (namespace/name):
	// the same pod name gets it back after a restart or rescheduling.
	ModeSticky Mode = "sticky"
)

// Modes lists the valid modes, in the order messages mention them.
var Modes = []Mode{ModeAuto, ModePool, ModeSticky}

// Written by kube-eip.
const (
	// LabelPublicIP carries the pod's public address once associated; the
	// wait init container reads it through the downward API.
	LabelPublicIP = Prefix + "public-ip"
	// LabelManaged marks pods the binder watches.
	LabelManaged = Prefix + "managed"
	// AnnotationAllocationID is the allocation id of the bound address.
	AnnotationAllocationID = Prefix + "allocation-id"
	// AnnotationClaim is the token that ties a pod to what admission
	// reserved for it: a pod from generateName has no name or UID yet when
	// the webhook sees it.
	AnnotationClaim = Prefix + "claim"
	// AnnotationReservation names the EIPReservation admission made.
	AnnotationReservation = Prefix + "reservation"
	// AnnotationReservedIP is the public address reserved at admission.
	AnnotationReservedIP = Prefix + "reserved-ip"
	// AnnotationAssociationID is the EC2 association of the bound address
	// with the pod's network interface; the binder disassociates exactly
	// this association, never one made by someone else.
	AnnotationAssociationID = Prefix + "association-id"
	// FinalizerRelease keeps a deleted pod until the binder has
	// disassociated and released its address, even if the binder was down
	// when the pod was deleted. Admission adds it.
	FinalizerRelease = Prefix + "release"
	// ConditionEIPReady is the pod condition (and readiness gate) that turns
	// true once the address is associated with the pod.
	ConditionEIPReady = Prefix + "eip-ready"
)

// Namespaces opt in with this label set to InjectionEnabled.
const (
	LabelInjection   = Prefix + "injection"
	InjectionEnabled = "enabled"
)

// Names of what the webhook injects into a pod.
const (
	WaitContainerName = "kube-eip-wait"
	PodInfoVolumeName = "kube-eip-podinfo"
	PodInfoMountPath  = "/etc/kube-eip/podinfo"
	PodInfoLabelsFile = "labels"
)

// Event reasons on pods.
const (
	EventReserved      = "EIPReserved"
	EventAssociated    = "EIPAssociated"
	EventReleased      = "EIPReleased"
	EventReserveFailed = "EIPReserveFailed"
	EventBindFailed    = "EIPBindFailed"
	EventReleaseFailed = "EIPReleaseFailed"
	// EventQuotaExhausted: the account's Elastic IP quota is used up; the
	// pod waits, once told, for an address to be released.
	EventQuotaExhausted = "EIPQuotaExhausted"
	// EventRefused: the pod is not authorized for what it asks (its
	// namespace, pool, BYOIP source, cap or reservation); nothing was done.
	EventRefused = "EIPRefused"
	// EventWrongBorderGroup: the holder's zone is in another network border
	// group than its address, which EC2 cannot associate there; nothing
	// was done.
	EventWrongBorderGroup = "EIPWrongBorderGroup"
)

// EventReclaimed, on an EIPReservation: no pod claimed it within the claim
// TTL of its admission, so it was deleted and its address is free again.
const EventReclaimed = "EIPReclaimed"

// EC2 tags on the addresses kube-eip allocates or uses. Every address the
// binder touches carries TagCluster; an address tagged for another cluster
// is never touched.
const (
	// TagCluster names the cluster that owns the address.
	TagCluster = Prefix + "cluster"
	// TagOwner is the pod ("<namespace>/<name>", OwnerTag) the address was
	// allocated for, or is kept for (sticky).
	TagOwner = Prefix + "owner"
	// TagClaim is the pod's claim token, written at allocation: before
	// allocating again for the same pod the binder looks for it, because
	// AllocateAddress is not idempotent.
	TagClaim = Prefix + "claim"
	// TagMode is the mode the address was allocated for (auto, sticky).
	TagMode = Prefix + "mode"
	// TagController is the pod's controller ("<Kind>/<name>",
	// ControllerTag) for sticky addresses: they are kept while it exists.
	TagController = Prefix + "controller"
	// TagHolder is the kind of what holds the address (HolderPod,
	// HolderNode, HolderFloating); TagOwner then names the holder: the
	// pod, the node, or the pool of a floating address. Addresses
	// allocated for pods before this tag existed carry a claim instead,
	// and are a pod's.
	TagHolder = Prefix + "holder"
	// TagAssociation is the association the binder made of a node's or a
	// floating address: the one association of it that is kube-eip's to
	// undo or move. (A pod's pool address records it on its reservation.)
	TagAssociation = Prefix + "association"
	// TagNode is the node a floating address is on, as the binder put it
	// there: the one holder it may move the address from.
	TagNode = Prefix + "node"
	// TagTarget is where the binder is putting a node's or a floating
	// address ("<eni>/<private IP>"), written before it associates: an
	// association there is kube-eip's even if the answer that would have
	// recorded it in TagAssociation was lost.
	TagTarget = Prefix + "target"
)

// The kinds of holder TagHolder names.
const (
	HolderPod      = "pod"
	HolderNode     = "node"
	HolderFloating = "floating"
)

// VPC CNI's annotation naming the branch network interface of a pod that
// uses security groups for pods.
const AnnotationPodENI = "vpc.amazonaws.com/pod-eni"

// MaxTagValue is the longest tag value EC2 accepts.
const MaxTagValue = 256

// OwnerTag is the value of TagOwner for a pod: "<namespace>/<name>", or,
// where that is longer than EC2 takes, the namespace, as much of the name
// as fits, "~" (which no Kubernetes name holds) and a hash of the whole
// name, which no other name gives.
func OwnerTag(namespace, name string) string { return fitTag(namespace, name) }

// ControllerTag is the value of TagController for a pod's controller:
// "<Kind>/<name>", shortened as OwnerTag is.
func ControllerTag(kind, name string) string { return fitTag(kind, name) }

func fitTag(prefix, name string) string {
	full := prefix + "/" + name
	if len(full) <= MaxTagValue {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	hash := hex.EncodeToString(sum[:8])
	return prefix + "/" + name[:MaxTagValue-len(prefix)-2-len(hash)] + "~" + hash
}

// ValidClaim reports whether s can be a claim token: kube-eip makes them
// of 24 hex digits; anything of 1 to 64 lower-case letters, digits and '-'
// fits the tag it goes into.
func ValidClaim(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-'
	}) < 0
}
