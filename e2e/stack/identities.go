package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/deploy"
	"github.com/kube-eip/kube-eip/webhook"
)

// Namespace is where kube-eip's identities live, as in deploy/.
const Namespace = deploy.Namespace

// Identities are the users the stack's webhook and binder act as.
var Identities = deploy.Identities(Namespace)

// tokenLifetime is how long the components' tokens last; every start of
// the stack requests new ones.
const tokenLifetime = 30 * 24 * time.Hour

// setUpIdentities gives the webhook and the binder what an install gives
// them: a service account each in kube-eip's namespace, bound to exactly
// the roles generated from their markers (deploy/rbac). It returns the
// kubeconfig each runs with, by component. Running them as themselves
// (not as the admin) is what lets the admission policies tell kube-eip
// from a tenant, and what tests that the generated roles are enough.
func (s *Stack) setUpIdentities(ctx context.Context) (map[string]string, error) {
	kube := s.Kube
	if err := ensure(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, kube.CoreV1().Namespaces()); err != nil {
		return nil, err
	}
	kubeconfigs := map[string]string{}
	for component, sa := range map[string]string{"webhook": deploy.WebhookServiceAccount, "binder": deploy.BinderServiceAccount} {
		roles, err := deploy.RBAC(component)
		if err != nil {
			return nil, err
		}
		subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: Namespace}}
		steps := []func() error{
			func() error {
				return ensure(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: Namespace}}, kube.CoreV1().ServiceAccounts(Namespace))
			},
			func() error {
				return ensure(ctx, roles.ClusterRole, kube.RbacV1().ClusterRoles())
			},
			func() error {
				return ensure(ctx, roles.Role, kube.RbacV1().Roles(Namespace))
			},
			func() error {
				return ensure(ctx, &rbacv1.ClusterRoleBinding{
					ObjectMeta: metav1.ObjectMeta{Name: roles.ClusterRole.Name},
					RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roles.ClusterRole.Name},
					Subjects:   subject,
				}, kube.RbacV1().ClusterRoleBindings())
			},
			func() error {
				return ensure(ctx, &rbacv1.RoleBinding{
					ObjectMeta: metav1.ObjectMeta{Name: roles.Role.Name, Namespace: Namespace},
					RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: roles.Role.Name},
					Subjects:   subject,
				}, kube.RbacV1().RoleBindings(Namespace))
			},
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, fmt.Errorf("setting up the %s's identity: %w", component, err)
			}
		}
		path, err := s.writeServiceAccountKubeconfig(ctx, component, sa)
		if err != nil {
			return nil, err
		}
		kubeconfigs[component] = path
	}
	return kubeconfigs, nil
}

// writer is a typed client of one kind.
type writer[T metav1.Object] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
	Get(context.Context, string, metav1.GetOptions) (T, error)
	Update(context.Context, T, metav1.UpdateOptions) (T, error)
}

// ensure creates obj, or updates the one that exists (a kept dev stack
// resumes) to it.
func ensure[T metav1.Object](ctx context.Context, obj T, api writer[T]) error {
	_, err := api.Create(ctx, obj, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing, err := api.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(existing.GetResourceVersion())
	_, err = api.Update(ctx, obj, metav1.UpdateOptions{})
	return err
}

// writeServiceAccountKubeconfig requests a token for the service account
// and writes a kubeconfig that uses it.
func (s *Stack) writeServiceAccountKubeconfig(ctx context.Context, component, sa string) (string, error) {
	tok, err := s.Kube.CoreV1().ServiceAccounts(Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(tokenLifetime.Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for %s: %w", sa, err)
	}
	dir := filepath.Join(s.dir, component)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(tok.Status.Token), 0o600); err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kube-eip-local"] = &clientcmdapi.Cluster{Server: s.ControlPlane.APIServerURL, CertificateAuthority: s.ControlPlane.RESTConfig().CAFile}
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{TokenFile: tokenFile}
	cfg.Contexts[sa] = &clientcmdapi.Context{Cluster: "kube-eip-local", AuthInfo: sa, Namespace: Namespace}
	cfg.CurrentContext = sa
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("writing the %s's kubeconfig: %w", component, err)
	}
	return path, nil
}

// installAdmissionPolicies installs kube-eip's ValidatingAdmissionPolicies
// and waits until the API server enforces them: it has loaded them when a
// dry-run pod carrying kube-eip's label outside an opted-in namespace is
// refused.
func (s *Stack) installAdmissionPolicies(ctx context.Context) error {
	policies, bindings := webhook.AdmissionPolicies(Identities)
	api := s.Kube.AdmissionregistrationV1()
	for _, p := range policies {
		if err := ensure(ctx, p, api.ValidatingAdmissionPolicies()); err != nil {
			return fmt.Errorf("installing admission policy %s: %w", p.Name, err)
		}
	}
	for _, b := range bindings {
		if err := ensure(ctx, b, api.ValidatingAdmissionPolicyBindings()); err != nil {
			return fmt.Errorf("installing admission policy binding %s: %w", b.Name, err)
		}
	}
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kube-eip-policy-probe-", Labels: map[string]string{"kube-eip.io/managed": "true"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "probe"}}},
	}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, last = s.Kube.CoreV1().Pods(metav1.NamespaceDefault).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return last != nil && strings.Contains(last.Error(), webhook.PodKeysPolicyName), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the API server to enforce the admission policies (last: %w): %w", last, err)
	}
	return nil
}

// ImpersonatedConfig is an admin configuration of the stack's API server
// that acts as user (in groups), as a tenant or one of kube-eip's
// identities would.
func (s *Stack) ImpersonatedConfig(user string, groups ...string) *rest.Config {
	cfg := s.ControlPlane.RESTConfig()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return cfg
}

// ImpersonatedClient is a client of ImpersonatedConfig.
func (s *Stack) ImpersonatedClient(user string, groups ...string) (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(s.ImpersonatedConfig(user, groups...))
}
