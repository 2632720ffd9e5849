package binder

// The binder's permissions in the cluster, generated into deploy/rbac/binder
// by make generate. Leases, and core events in its namespace (what controller-runtime
// records of leader election), are for leader election, and the ConfigMap is
// its count of the account's addresses, both in kube-eip's own namespace.
//
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=nodes;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=kube-eip.io,resources=eippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=kube-eip.io,resources=eipreservations,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=kube-eip.io,resources=eippools/status;eipreservations/status,verbs=patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=statefulsets;replicasets;daemonsets,verbs=get;list
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list
// +kubebuilder:rbac:groups="",namespace=kube-eip-system,resources=configmaps,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=kube-eip-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups="",namespace=kube-eip-system,resources=events,verbs=create;patch
