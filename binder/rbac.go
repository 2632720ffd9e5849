package binder

// The binder's permissions in the cluster, generated into deploy/rbac/binder
// by make generate, each verb one that some path of the binder makes
// (hack/rbaccheck, in make test, fails on one no suite used):
//   - pods, nodes, namespaces, pools and reservations come from the
//     manager's cache, so they are listed and watched, never read one by
//     one; the binder alone writes reservations' status, and deletes
//     them once returned or never claimed; a node of a node pool is patched with its address's label and
//     annotation, and loses the pool's startup taint;
//   - a StatefulSet is read by name when a sticky address outlives its pod
//     (controllerGone), and a ReplicaSet or Job to tell the Deployment or
//     CronJob above a refused pod (internal/owners);
//   - the ConfigMap, the binder's count of the account's addresses, is
//     only ever applied: server-side apply creates it the first time;
//   - leases, and core events in kube-eip's namespace, are leader
//     election's: it records that a replica became the leader;
//   - the nodes' leases are watched for floating addresses. The cache
//     lists kube-node-lease alone, but the rule is the ClusterRole's: the
//     chart has one Role, in its own namespace.
//
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=list;watch;patch
// +kubebuilder:rbac:groups=kube-eip.io,resources=eippools,verbs=list;watch
// +kubebuilder:rbac:groups=kube-eip.io,resources=eipreservations,verbs=list;watch;delete
// +kubebuilder:rbac:groups=kube-eip.io,resources=eippools/status;eipreservations/status,verbs=patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=statefulsets;replicasets,verbs=get
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get
// +kubebuilder:rbac:groups="",namespace=kube-eip-system,resources=configmaps,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=kube-eip-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=list;watch
// +kubebuilder:rbac:groups="",namespace=kube-eip-system,resources=events,verbs=create
