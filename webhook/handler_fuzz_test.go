package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// memReserver reserves in memory, like the API server would: a name once.
type memReserver struct{ taken map[string]bool }

func (r *memReserver) Reserve(_ context.Context, plan Plan, pod *corev1.Pod, claim string) (*v1alpha1.EIPReservation, error) {
	for _, c := range plan.Candidates {
		if !r.taken[c.AllocationID] {
			r.taken[c.AllocationID] = true
			return &v1alpha1.EIPReservation{ObjectMeta: metav1.ObjectMeta{Name: c.AllocationID},
				Spec: v1alpha1.EIPReservationSpec{PublicIP: c.PublicIP, Claim: claim, PodNamespace: pod.Namespace}}, nil
		}
	}
	return nil, errExhausted
}

func testHandler() http.Handler { return &admission.Webhook{Handler: testHandlerImpl()} }

func testHandlerImpl() *Handler {
	tenant := map[string]string{"tenant": "payments"}
	inGroup := func(a v1alpha1.PoolAddress, group string) v1alpha1.PoolAddress {
		a.NetworkBorderGroup = group
		return a
	}
	local := inGroup(addr("eipalloc-3", "15.0.0.3"), "us-east-1-bos-1")
	acct := zonesAccount
	state := fakeState{
		account: &acct,
		pools: map[string]*v1alpha1.EIPPool{
			"partners": pool("partners", map[string]string{"team": "payments"}, tenant,
				inGroup(addr("eipalloc-1", "3.0.0.1"), "us-east-1"), inGroup(addr("eipalloc-2", "3.0.0.2"), "us-east-1"), local),
			"legacy": pool("legacy", map[string]string{"pec-ip-pool": ""}, tenant, addr("eipalloc-5", "3.0.0.5")),
		},
		reserved: map[string]*v1alpha1.EIPReservation{},
	}
	return NewHandler(Handler{
		State: state,
		Namespaces: func(_ context.Context, name string) (*corev1.Namespace, error) {
			return servedNamespace(name, tenant), nil
		},
		Reserver: &memReserver{taken: map[string]bool{}},
		Config:   InjectConfig{Image: "ghcr.io/kube-eip/kube-eip:test", WaitTimeout: time.Minute},
	})
}

func post(body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

func review(op admissionv1.Operation, pod, old []byte, dryRun bool) []byte {
	req := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "0b5d3c1e-0000-4000-8000-000000000001", Operation: op, Namespace: "payments",
			Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Object:   runtime.RawExtension{Raw: pod}, OldObject: runtime.RawExtension{Raw: old}, DryRun: &dryRun,
		},
	}
	body, _ := json.Marshal(req)
	return body
}

// The handler never panics and never answers with a server error, whatever
// the annotations and shape of the pod; a denial is a 200 with allowed=false.
func FuzzHandler(f *testing.F) {
	f.Add(api.AnnotationMode, "pool", api.AnnotationPool, "partners", "web-0", false, false, "CREATE")
	f.Add(api.AnnotationMode, "sticky", api.LegacyAnnotationType, "fixed-tag-value", "", true, false, "CREATE")
	f.Add(api.LegacyAnnotationType, "fixed-tag", api.LegacyAnnotationTag, "pec-ip-pool", "x", false, true, "UPDATE")
	f.Add(api.AnnotationMode, "auto", api.AnnotationPublicIPv4Pool, "ipv4pool-ec2-0123456789abcdef0", "a", false, false, "CREATE")
	handler := testHandler()
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, name string, hostNetwork, dryRun bool, op string) {
		pod := &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "payments", Annotations: map[string]string{k1: v1, k2: v2}},
			Spec:       corev1.PodSpec{HostNetwork: hostNetwork, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}
		raw, _ := json.Marshal(pod)
		var old []byte
		if op == string(admissionv1.Update) {
			prev := pod.DeepCopy()
			prev.Annotations = map[string]string{k1: v1}
			old, _ = json.Marshal(prev)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, post(review(admissionv1.Operation(op), raw, old, dryRun)))
		if rec.Code >= 500 {
			t.Fatalf("answered %d: %s", rec.Code, rec.Body)
		}
		var resp admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Response == nil {
			t.Fatalf("unreadable answer %q: %v", rec.Body, err)
		}
		if r := resp.Response; r.Result != nil && (r.Result.Code >= 500 || r.Result.Code == http.StatusBadRequest) {
			t.Fatalf("error in the review (a well-formed pod must get a decision): %+v", r.Result)
		}
	})
}

func TestHandlerPatchesAValidPod(t *testing.T) {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "payments", Annotations: map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "partners"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	raw, _ := json.Marshal(pod)
	rec := httptest.NewRecorder()
	testHandler().ServeHTTP(rec, post(review(admissionv1.Create, raw, nil, false)))
	var resp admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if !resp.Response.Allowed || resp.Response.PatchType == nil || !bytes.Contains(resp.Response.Patch, []byte(api.WaitContainerName)) ||
		!bytes.Contains(resp.Response.Patch, []byte("3.0.0.1")) {
		t.Fatalf("response %+v patch %s", resp.Response, resp.Response.Patch)
	}
}
