package webhook

// The webhook's permissions in the cluster, generated into
// deploy/rbac/webhook by make generate, each verb one that some path of
// the webhook makes (hack/rbaccheck, in make test, fails on one no suite
// used). It caches managed pods' metadata, namespaces, pools and the
// binder's count of the account's addresses (a ConfigMap in kube-eip's own
// namespace): those are listed and watched, never read one by one. It
// reserves by creating EIPReservations and reads live the one a pod's
// annotation names; their status, and their deletion, are the binder's. It
// reads a refused pod's ReplicaSet or Job to find the Deployment or
// CronJob to tell. Leases, and core events in kube-eip's namespace, are
// leader election's.
//
// With --cert-source=self-signed (certs.SelfSigned) every replica watches
// its one Secret, and the leader creates and updates it and patches the
// caBundle of the webhook configurations, which it polls rather than
// watches. Everything but creating the Secret is limited to the chart's
// names: a list or watch is then allowed only with a metadata.name field
// selector, which is how the source watches. Other names given on the
// command line need these rules edited to match.
//
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=list;watch
// +kubebuilder:rbac:groups=kube-eip.io,resources=eippools,verbs=list;watch
// +kubebuilder:rbac:groups=kube-eip.io,resources=eipreservations,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get
// +kubebuilder:rbac:groups="",namespace=kube-eip-system,resources=configmaps,verbs=list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=kube-eip-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups="",namespace=kube-eip-system,resources=events,verbs=create
// +kubebuilder:rbac:groups="",namespace=kube-eip-system,resources=secrets,resourceNames=kube-eip-webhook-self-signed,verbs=get;list;watch;update
// +kubebuilder:rbac:groups="",namespace=kube-eip-system,resources=secrets,verbs=create
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,resourceNames=kube-eip-webhook,verbs=get;patch
