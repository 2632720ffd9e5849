// Package controlplane runs a real Kubernetes control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) as local processes
// on loopback ports, for end-to-end tests and the dev stack. The binaries are
// built from source by hack/build-tools.sh into bin/.
package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configures a control plane. The zero value is usable.
type Options struct {
	// Dir keeps the cluster's state (etcd data, certificates, logs). When
	// empty, a temporary directory is used and removed by Stop. A non-empty
	// Dir is kept, and a later Start on it resumes the same cluster.
	Dir string
	// BinDir holds the component binaries; by default $KUBE_EIP_BIN_DIR or
	// the bin/ directory at the root of this repository.
	BinDir string
	// StartTimeout bounds the wait for all components to be healthy.
	StartTimeout time.Duration
	// ExtraAPIServerArgs are appended to kube-apiserver's flags.
	ExtraAPIServerArgs []string
	// EgressSocket, when set, is the Unix socket of an HTTP CONNECT proxy
	// (package e2e/egress, started before the control plane) that carries
	// all of kube-apiserver's "cluster" traffic: calls to webhook Services
	// and aggregated APIs, to kubelets (logs, exec, port-forward) and the
	// pods/services/nodes proxy. Those are for Service, pod and node
	// addresses where nothing of this machine listens; the proxy maps them
	// to loopback or refuses them. At most 107 bytes long.
	EgressSocket string
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	// Dir is the state directory; LogDir holds one log file per component.
	Dir, LogDir string
	// KubeconfigPath is an admin (system:masters) kubeconfig.
	KubeconfigPath string
	// APIServerURL is the https URL of kube-apiserver on loopback.
	APIServerURL string
	// Kubectl is the path of the kubectl of the control plane's version.
	Kubectl string

	config   *rest.Config
	certs    pki
	procs    []*process // in start order
	tempDir  bool
	stopOnce sync.Once
}

// component names, also the names of the binaries and log files.
const (
	etcdName              = "etcd"
	apiServerName         = "kube-apiserver"
	controllerManagerName = "kube-controller-manager"
	schedulerName         = "kube-scheduler"
	// KubectlName is the control plane's own kubectl, built beside it.
	KubectlName = "kubectl"
	// KubeletClientCommonName is the user kube-apiserver authenticates as
	// to kubelets (kubeadm's name), of group system:masters.
	KubeletClientCommonName = "kube-apiserver-kubelet-client"
)

// Start launches the components and returns once each is healthy and the
// controller manager has created the default service account (pods can be
// created from then on). On error nothing is left running.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	var err error
	if opts.EgressSocket != "" {
		if opts.EgressSocket, err = checkSocketPath(opts.EgressSocket); err != nil {
			return nil, err
		}
	}
	binDir, err := resolveBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Dir: opts.Dir, Kubectl: filepath.Join(binDir, KubectlName)}
	if cp.Dir == "" {
		sweepStaleTempDirs()
		cp.Dir, err = os.MkdirTemp("", tempDirPattern)
		if err != nil {
			return nil, fmt.Errorf("creating state directory: %w", err)
		}
		cp.tempDir = true
		if err := claimTempDir(cp.Dir); err != nil {
			return nil, fmt.Errorf("claiming state directory: %w", err)
		}
	}
	cp.LogDir = filepath.Join(cp.Dir, "logs")
	if err := os.MkdirAll(cp.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := cp.start(ctx, binDir, opts); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) start(ctx context.Context, binDir string, opts Options) error {
	certs := newPKI(filepath.Join(cp.Dir, "pki"))
	if err := certs.ensure(); err != nil {
		return err
	}
	cp.certs = certs
	ports, err := loadOrPickPorts(cp.Dir, cp.tempDir)
	if err != nil {
		return err
	}
	cp.APIServerURL = "https://" + hostPort(ports.APIServer)
	cp.config = &rest.Config{
		Host: cp.APIServerURL,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile: certs.caCert, CertFile: certs.adminCert, KeyFile: certs.adminKey,
		},
		QPS:   200,
		Burst: 400,
	}
	cp.KubeconfigPath = filepath.Join(cp.Dir, "admin.kubeconfig")
	if err := writeKubeconfig(cp.KubeconfigPath, cp.APIServerURL, certs); err != nil {
		return err
	}

	etcdURL := "http://" + hostPort(ports.EtcdClient)
	peerURL := "http://" + hostPort(ports.EtcdPeer)
	etcd, err := cp.run(binDir, etcdName,
		"--name=default",
		"--data-dir="+filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		// A test cluster trades durability on power loss for speed.
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	if err := waitHealthy(ctx, etcd, httpGetCheck(etcdURL+"/health", nil)); err != nil {
		return err
	}

	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports.APIServer),
		"--cert-dir=" + filepath.Join(cp.Dir, "apiserver"),
		"--tls-cert-file=" + certs.servingCert,
		"--tls-private-key-file=" + certs.servingK,
		"--client-ca-file=" + certs.caCert,
		"--service-account-key-file=" + certs.saPub,
		"--service-account-signing-key-file=" + certs.saKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		// The advertise address is loopback, which an Endpoints object may
		// not hold; nothing in the cluster dials the kubernetes Service.
		"--endpoint-reconciler-type=none",
		// Kubelet APIs, where there are, authenticate the API server by
		// this certificate and are trusted when the cluster CA issued
		// theirs (IssueServingCertificate).
		"--kubelet-client-certificate=" + certs.kubeletClientCert,
		"--kubelet-client-key=" + certs.kubeletClientK,
		"--kubelet-certificate-authority=" + certs.caCert,
		"--profiling=false",
	}
	if opts.EgressSocket != "" {
		egressConfig, err := writeEgressSelectorConfig(cp.Dir, opts.EgressSocket)
		if err != nil {
			return err
		}
		apiArgs = append(apiArgs,
			"--egress-selector-config-file="+egressConfig,
			// The egress proxy maps node InternalIPs to fake kubelet APIs;
			// the default order would pick the Hostname fake nodes also
			// report, a name the proxy does not resolve.
			"--kubelet-preferred-address-types=InternalIP",
		)
	} else {
		apiArgs = append(apiArgs,
			// Nodes here have no kubelet API, and their addresses are
			// VPC-style private ones: an address type no node reports keeps
			// kubectl logs and exec from dialing (or resolving) anything off
			// this machine.
			"--kubelet-preferred-address-types=ExternalDNS",
		)
	}
	apiServer, err := cp.run(binDir, apiServerName, append(apiArgs, opts.ExtraAPIServerArgs...)...)
	if err != nil {
		return err
	}
	if err := waitHealthy(ctx, apiServer, cp.apiReadyCheck()); err != nil {
		return err
	}

	componentArgs := func(port int, name string) []string {
		return []string{
			"--kubeconfig=" + cp.KubeconfigPath,
			"--authentication-kubeconfig=" + cp.KubeconfigPath,
			"--authorization-kubeconfig=" + cp.KubeconfigPath,
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", port),
			"--cert-dir=" + filepath.Join(cp.Dir, name),
			"--leader-elect=false",
		}
	}
	kcm, err := cp.run(binDir, controllerManagerName, append(componentArgs(ports.ControllerManager, controllerManagerName),
		"--service-account-private-key-file="+certs.saKey,
		"--root-ca-file="+certs.caCert,
		"--cluster-name=kube-eip-local",
	)...)
	if err != nil {
		return err
	}
	scheduler, err := cp.run(binDir, schedulerName, componentArgs(ports.Scheduler, schedulerName)...)
	if err != nil {
		return err
	}
	insecure := insecureLoopbackTransport()
	if err := waitHealthy(ctx, kcm, httpGetCheck("https://"+hostPort(ports.ControllerManager)+"/healthz", insecure)); err != nil {
		return err
	}
	if err := waitHealthy(ctx, scheduler, httpGetCheck("https://"+hostPort(ports.Scheduler)+"/healthz", insecure)); err != nil {
		return err
	}
	// The service account admission plugin refuses pods until the
	// namespace's default service account exists.
	return waitHealthy(ctx, kcm, cp.serviceAccountCheck(metav1.NamespaceDefault))
}

func (cp *ControlPlane) run(binDir, name string, args ...string) (*process, error) {
	p, err := startProcess(name, filepath.Join(binDir, name), cp.LogDir, args, nil)
	if err != nil {
		return nil, err
	}
	cp.procs = append(cp.procs, p)
	return p, nil
}

// RESTConfig returns a fresh admin client configuration.
func (cp *ControlPlane) RESTConfig() *rest.Config { return rest.CopyConfig(cp.config) }

// CACertFile is the PEM file of the cluster CA: it issued the API server's
// serving certificate and every client certificate of the control plane,
// the API server's kubelet client (KubeletClientCommonName) among them,
// so a fake kubelet API verifies client certificates with it.
func (cp *ControlPlane) CACertFile() string { return cp.certs.caCert }

// IssueServingCertificate issues, from the cluster CA, a serving
// certificate for hosts (IP addresses or DNS names), its chain ending with
// the CA. The API server trusts it for kubelets; a webhook Service serving
// it is trusted by a caBundle of CACertFile's contents.
func (cp *ControlPlane) IssueServingCertificate(hosts ...string) (tls.Certificate, error) {
	return cp.certs.issueServing(hosts)
}

// Stop terminates the components in reverse start order and, for a
// temporary state directory, removes it. It is safe to call more than once.
func (cp *ControlPlane) Stop() error {
	var err error
	cp.stopOnce.Do(func() {
		for i := len(cp.procs) - 1; i >= 0; i-- {
			cp.procs[i].stop(10 * time.Second)
		}
		if cp.tempDir {
			err = os.RemoveAll(cp.Dir)
		}
	})
	return err
}

// Running reports whether every component process is still alive.
func (cp *ControlPlane) Running() bool {
	for _, p := range cp.procs {
		if p.exited() {
			return false
		}
	}
	return len(cp.procs) > 0
}

type healthCheck func(ctx context.Context) error

// waitHealthy polls check until it passes, the process dies or ctx ends.
func waitHealthy(ctx context.Context, p *process, check healthCheck) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if p.exited() {
			return false, p.exitError()
		}
		last = check(ctx)
		return last == nil, nil
	})
	if err == nil {
		return nil
	}
	if p.exited() {
		return p.exitError()
	}
	reason := fmt.Sprint(last)
	if len(reason) > 300 {
		reason = reason[:300] + "…"
	}
	return fmt.Errorf("waiting for %s to become healthy (last: %s): %w; log %s:\n%s", p.name, reason, err, p.logPath, p.tail(20))
}

func (cp *ControlPlane) apiReadyCheck() healthCheck {
	return func(ctx context.Context) error {
		client, err := kubernetes.NewForConfig(cp.config)
		if err != nil {
			return err
		}
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(body)) != "ok" {
			return fmt.Errorf("%w: %s", errNotReady, body)
		}
		return nil
	}
}

func (cp *ControlPlane) serviceAccountCheck(namespace string) healthCheck {
	return func(ctx context.Context) error {
		client, err := kubernetes.NewForConfig(cp.config)
		if err != nil {
			return err
		}
		_, err = client.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%w: no default service account in %s yet", errNotReady, namespace)
		}
		return err
	}
}

// WaitForServiceAccount blocks until the controller manager has created the
// default service account of a namespace, which pods in it need.
func (cp *ControlPlane) WaitForServiceAccount(ctx context.Context, namespace string) error {
	check := cp.serviceAccountCheck(namespace)
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		err := check(ctx)
		if errors.Is(err, errNotReady) {
			return false, nil
		}
		return err == nil, err
	})
}

func writeKubeconfig(path, server string, certs pki) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kube-eip-local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: certs.caCert}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: certs.adminCert, ClientKey: certs.adminKey}
	cfg.Contexts["kube-eip-local"] = &clientcmdapi.Context{Cluster: "kube-eip-local", AuthInfo: "admin", Namespace: corev1.NamespaceDefault}
	cfg.CurrentContext = "kube-eip-local"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}
