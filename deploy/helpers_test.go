package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/webhook/server"
)

// install is a rendering decoded into typed objects, by kind and name.
type install struct {
	objs []runtime.Object
}

// decodeInstall decodes every document of data strictly into its Go
// type: a field the API would drop fails. Kinds client-go does not know
// (cert-manager's, the Prometheus Operator's) are kept unstructured.
func decodeInstall(t *testing.T, data []byte) install {
	t.Helper()
	scheme, err := manifestScheme()
	if err != nil {
		t.Fatal(err)
	}
	var in install
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var typeMeta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &typeMeta); err != nil {
			t.Fatal(err)
		}
		if typeMeta.Kind == "" {
			continue // a comment: the header, or helm's "# Source:" of an empty template
		}
		gvk := schema.FromAPIVersionAndKind(typeMeta.APIVersion, typeMeta.Kind)
		obj, err := scheme.New(gvk)
		if runtime.IsNotRegisteredError(err) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				t.Fatalf("decoding a %s: %v", typeMeta.Kind, err)
			}
			in.objs = append(in.objs, u)
			continue
		}
		if err != nil {
			t.Fatalf("document of kind %s: %v", typeMeta.Kind, err)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("decoding a %s: %v", typeMeta.Kind, err)
		}
		in.objs = append(in.objs, obj)
	}
	return in
}

// all returns in's objects of type T.
func all[T runtime.Object](in install) []T {
	var out []T
	for _, o := range in.objs {
		if typed, ok := o.(T); ok {
			out = append(out, typed)
		}
	}
	return out
}

// named returns in's object of type T named name, failing the test
// without one.
func named[T interface {
	runtime.Object
	GetName() string
}](t *testing.T, in install, name string) T {
	t.Helper()
	for _, o := range all[T](in) {
		if o.GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %s in the rendering", zero, name)
	return zero
}

// unstructuredOf returns in's objects of kind, which client-go does not know.
func unstructuredOf(in install, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range all[*unstructured.Unstructured](in) {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// kinds counts in's objects by kind.
func kinds(t *testing.T, in install) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, o := range in.objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			counts[u.GetKind()]++
			continue
		}
		gvks, _, err := mustScheme(t).ObjectKinds(o)
		if err != nil {
			t.Fatal(err)
		}
		counts[gvks[0].Kind]++
	}
	return counts
}

func mustScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s, err := manifestScheme()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// objectMeta is the metadata of any object of in.
func objectMeta(t *testing.T, o runtime.Object) metav1.Object {
	t.Helper()
	m, err := meta.Accessor(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// flag returns the value of --name in args, and whether it is there.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func onlyContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", d.Name, n)
	}
	return d.Spec.Template.Spec.Containers[0]
}

// selects reports whether sel selects the pods of d.
func selects(t *testing.T, sel *metav1.LabelSelector, d *appsv1.Deployment) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(d.Spec.Template.Labels))
}

func checkRestricted(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container %s runs with %+v, want non-root 65532, read-only root, no capabilities", c.Name, sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("container %s requests %v, want CPU and memory", c.Name, c.Resources.Requests)
	}
}

// checkProbesServed serves the webhook's HTTPS server and probes it as c's
// probes would: a probe of a path it does not answer, or in another
// scheme, would keep every replica unready.
func checkProbesServed(t *testing.T, c corev1.Container) {
	t.Helper()
	ca, err := certs.NewCA("probe-test")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv, err := server.Start(ctx, server.Options{
		Addr: "127.0.0.1:0", Certs: certs.NewStatic(pair), MetricsRegistry: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = srv.Wait()
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Fatalf("container %s has a probe %+v, want HTTP", c.Name, probe)
		}
		get := probe.HTTPGet
		url := strings.ToLower(string(get.Scheme)) + "://" + srv.Addr() + get.Path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("probing %s: %v", get.Path, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("probe of %s answered %s, want 200", get.Path, resp.Status)
		}
	}
}
