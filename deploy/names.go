package deploy

// The names kube-eip's install gives its objects. They are fixed, not
// derived from the release's name: the webhook configurations, the roles
// and the identities the admission rules trust are cluster-wide, so there
// is one install per cluster.

// Names of what the manifests install beside the service accounts and the
// roles. The webhook configurations are named apart from the local stack's
// process-mode registration ("kube-eip", by URL), so that installing the
// pods never overwrites it by accident.
const (
	WebhookDeployment        = "kube-eip-webhook"
	BinderDeployment         = "kube-eip-binder"
	WebhookService           = "kube-eip-webhook"
	WebhookDisruptionBudget  = "kube-eip-webhook"
	WebhookConfigurationName = "kube-eip-webhook"
	// WebhookTLSSecret holds the webhook's serving certificate (type
	// kubernetes.io/tls), for WebhookService's DNS names.
	WebhookTLSSecret = "kube-eip-webhook-tls" //nolint:gosec // a Secret's name, not a credential
	// SelfSignedSecret holds the self-signed source's CA and serving pair.
	// It is not WebhookTLSSecret, so that switching certManager.enabled
	// either way never hands cert-manager a Secret of kube-eip's (Opaque,
	// with a CA key), nor kube-eip one of cert-manager's.
	SelfSignedSecret = "kube-eip-webhook-self-signed" //nolint:gosec // a Secret's name, not a credential
	// AWSSecret holds the binder's AWS credentials, under the keys of
	// AWSCredentialKeys; it is optional, for clusters without IRSA or EKS
	// Pod Identity.
	AWSSecret = "kube-eip-aws" //nolint:gosec // a Secret's name, not a credential
	// DefaultImage is the image the Dockerfile builds.
	DefaultImage = "ghcr.io/kube-eip/kube-eip:dev"
	// DefaultWebhookReplicas keeps admission up through a node's loss or a
	// rollout: the webhook fails closed for pods that ask for an address.
	DefaultWebhookReplicas int32 = 2
)

// AWSCredentialKeys are the keys of AWSSecret the binder reads, each into
// the environment variable of the same name the AWS SDK looks for.
var AWSCredentialKeys = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}

// Ports and paths inside the pods.
const (
	WebhookPort        int32 = 9443
	WebhookServicePort int32 = 443
	BinderHealthPort   int32 = 8081
	BinderMetricsPort  int32 = 8080
	// WebhookTLSDir is where WebhookTLSSecret is mounted.
	WebhookTLSDir = "/etc/kube-eip/tls"
)

// Labels selects a component's pods ("webhook" or "binder").
func Labels(component string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "kube-eip", "app.kubernetes.io/component": component}
}

// PodSelector selects every pod of the install, both components'.
const PodSelector = "app.kubernetes.io/name=kube-eip"
