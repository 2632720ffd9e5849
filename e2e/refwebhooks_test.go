package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/e2e/stack"
	"github.com/kube-eip/kube-eip/webhook"
)

// The reference webhooks of BenchmarkPodCreation.
type refKind string

const (
	refAllow  refKind = "allow"
	refLabel  refKind = "label"
	refReplay refKind = "replay"

	// refLabelKey selects a namespace for a reference webhook.
	refLabelKey = "bench.kube-eip.io/reference"
	// refAddedLabel is what the label reference adds.
	refAddedLabel = "bench.kube-eip.io/seen"
)

type referenceWebhooks struct {
	calls map[refKind]*atomic.Int64
}

// startReferenceWebhooks serves and registers the reference webhooks, each
// for the namespaces labelled with its kind.
func startReferenceWebhooks(b *testing.B) *referenceWebhooks {
	r := &referenceWebhooks{calls: map[refKind]*atomic.Int64{}}
	mux := http.NewServeMux()
	labelPatch := fmt.Sprintf(`[{"op":"add","path":"/metadata/labels","value":{%q:"true"}}]`, refAddedLabel)
	replay := replayPatch(b)
	for kind, path := range map[refKind]string{refAllow: "/allow", refLabel: "/label", refReplay: webhook.Path} {
		r.calls[kind] = &atomic.Int64{}
		mux.Handle(path, r.answer(kind, func(review []byte) []byte {
			switch kind {
			case refLabel:
				return []byte(labelPatch)
			case refReplay:
				return bytes.Replace(replay, []byte(`"`+replaySAPlaceholder+`"`), serviceAccountVolume.Find(review), 1)
			}
			return nil
		}))
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = false // as kube-eip's own server
	srv.StartTLS()
	b.Cleanup(srv.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	minimal := func(kind refKind, path string) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:         string(kind) + ".reference.bench.kube-eip.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To(srv.URL + path), CABundle: caPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{refLabelKey: string(kind)}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](5),
		}
	}
	// The replay reference is registered as kube-eip is, but for its own
	// namespaces.
	ours := webhook.Configuration(webhook.Registration{Name: "reference", URL: srv.URL, CABundle: caPEM}).Webhooks[0]
	ours.Name = string(refReplay) + ".reference.bench.kube-eip.io"
	ours.NamespaceSelector.MatchLabels = map[string]string{refLabelKey: string(refReplay)}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-eip-bench-references"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{minimal(refAllow, "/allow"), minimal(refLabel, "/label"), ours},
	}
	hooks := kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := hooks.Create(b.Context(), cfg, metav1.CreateOptions{}); err != nil {
		b.Fatalf("registering the reference webhooks: %v", err)
	}
	b.Cleanup(func() { _ = hooks.Delete(context.Background(), cfg.Name, metav1.DeleteOptions{}) })
	return r
}

// answer admits every review at once, with the patch made from its body.
func (r *referenceWebhooks) answer(kind refKind, patch func(review []byte) []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.calls[kind].Add(1)
		body, err := io.ReadAll(req.Body)
		var review struct {
			Request struct {
				UID string `json:"uid"`
			} `json:"request"`
		}
		if err == nil {
			err = json.Unmarshal(body, &review)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp := fmt.Sprintf(`"uid":%q,"allowed":true`, review.Request.UID)
		if p := patch(body); p != nil {
			encoded, _ := json.Marshal(p) // base64, as AdmissionResponse.Patch is
			resp += fmt.Sprintf(`,"patchType":"JSONPatch","patch":%s`, encoded)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{%s}}`, resp)
	})
}

// namespace creates a namespace that kind's reference webhook selects.
func (r *referenceWebhooks) namespace(b *testing.B, kind refKind) string {
	ns := newNamespace(b)
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, refLabelKey, kind)
	if _, err := kube.CoreV1().Namespaces().Patch(b.Context(), ns, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		b.Fatalf("labelling namespace: %v", err)
	}
	return ns
}

// waitServing waits until the API server calls each reference webhook for
// the pods of its namespace (it learns of a new configuration from a watch),
// and checks that the mutating ones mutate.
func (r *referenceWebhooks) waitServing(b *testing.B, namespaces map[refKind]string) {
	for kind, ns := range namespaces {
		eventually(b, 30*time.Second, string(kind)+" reference webhook called", func(ctx context.Context) (bool, string, error) {
			before := r.calls[kind].Load()
			pod, err := kube.CoreV1().Pods(ns).Create(ctx, eipPod("probe", map[string]string{api.AnnotationMode: "auto"}), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				return false, "", err
			}
			if r.calls[kind].Load() == before {
				return false, "not called yet", nil
			}
			switch {
			case kind == refLabel && pod.Labels[refAddedLabel] != "true":
				return false, "", fmt.Errorf("the label reference did not add its label: %v", pod.Labels)
			case kind == refReplay && (len(pod.Spec.InitContainers) != 1 || pod.Spec.InitContainers[0].Name != api.WaitContainerName):
				return false, "", fmt.Errorf("the replay reference did not inject the wait container: %v", pod.Spec.InitContainers)
			}
			return true, "", nil
		})
	}
}

// replaySAPlaceholder stands for the service account token volume, whose
// name the API server makes up for each pod.
const replaySAPlaceholder = "service-account-token"

var serviceAccountVolume = regexp.MustCompile(`"kube-api-access-[a-z0-9]+"`)

// replayPatch is the JSON patch kube-eip's webhook sends for the benchmark's
// pod: the one Inject makes, as a diff of the pod before and after.
func replayPatch(b *testing.B) []byte {
	pod := eipPod("replay", map[string]string{api.AnnotationMode: "auto"})
	// What the API server's service account plugin added before the call.
	pod.Spec.Volumes = []corev1.Volume{{Name: replaySAPlaceholder}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: replaySAPlaceholder, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}
	mutated := pod.DeepCopy()
	webhook.Inject(mutated, webhook.InjectConfig{Image: stack.Image, WaitTimeout: 10 * time.Minute}, strings.Repeat("0", 24), nil)
	before, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	after, err := json.Marshal(mutated)
	if err != nil {
		b.Fatal(err)
	}
	ops, err := jsonpatch.CreatePatch(before, after)
	if err != nil {
		b.Fatal(err)
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		b.Fatal(err)
	}
	return patch
}
