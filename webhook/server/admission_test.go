package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kube-eip/kube-eip/certs"
	"github.com/kube-eip/kube-eip/webhook/server/loadgen"
)

// jsonPatchOp is one RFC 6902 operation as the API server reads it.
type jsonPatchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

func TestAdmissionReviewOverTLS(t *testing.T) {
	p := newPKI(t)
	echo := &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		if req.Namespace == "kube-system" {
			return admission.Denied("kube-system is not served")
		}
		return admission.Allowed("").WithWarnings("warned for " + string(req.UID))
	})}
	srv := startServer(t, Options{
		Certs:    certs.NewStatic(p.issue(t, time.Hour)),
		Handlers: map[string]http.Handler{"/mutate-pods": standInInjector(), "/validate-pods": echo},
	})
	c := p.client(t)

	t.Run("mutating: patch and uid echoed", func(t *testing.T) {
		review := post(t, c, srv.url+"/mutate-pods", podReview(t, "2d6a7e0c-5f1b-4b8e-9c3d-7a8b9c0d1e2f", loadgen.ExamplePod()))
		resp := review.Response
		if resp.UID != "2d6a7e0c-5f1b-4b8e-9c3d-7a8b9c0d1e2f" || !resp.Allowed {
			t.Fatalf("response uid=%q allowed=%t, want the request's uid, allowed", resp.UID, resp.Allowed)
		}
		if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("patchType = %v, want JSONPatch", resp.PatchType)
		}
		var ops []jsonPatchOp
		if err := json.Unmarshal(resp.Patch, &ops); err != nil {
			t.Fatalf("decoding patch %s: %v", resp.Patch, err)
		}
		want := map[string]bool{"/spec/initContainers": false, "/spec/volumes/2": false, "/spec/readinessGates": false}
		for _, op := range ops {
			if _, ok := want[op.Path]; ok && op.Op == "add" {
				want[op.Path] = true
			}
		}
		for path, seen := range want {
			if !seen {
				t.Errorf("patch %s has no add at %s", resp.Patch, path)
			}
		}
	})

	t.Run("mutating: bad mode denied", func(t *testing.T) {
		pod := loadgen.ExamplePod()
		pod.Annotations["kube-eip.io/mode"] = "fixed"
		resp := post(t, c, srv.url+"/mutate-pods", podReview(t, "denied-1", pod)).Response
		if resp.UID != "denied-1" || resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusForbidden {
			t.Fatalf("response = %+v, want a 403 denial for uid denied-1", resp)
		}
		if !bytes.Contains([]byte(resp.Result.Message), []byte(`unknown mode "fixed"`)) {
			t.Fatalf("denial message %q does not name the bad mode", resp.Result.Message)
		}
	})

	t.Run("validating: warnings and denial", func(t *testing.T) {
		resp := post(t, c, srv.url+"/validate-pods", podReview(t, "warn-1", loadgen.ExamplePod())).Response
		if !resp.Allowed || len(resp.Warnings) != 1 || resp.Warnings[0] != "warned for warn-1" {
			t.Fatalf("response = %+v, want allowed with one warning", resp)
		}
		pod := loadgen.ExamplePod()
		pod.Namespace = "kube-system"
		if resp := post(t, c, srv.url+"/validate-pods", podReview(t, "deny-2", pod)).Response; resp.Allowed {
			t.Fatalf("kube-system pod allowed: %+v", resp)
		}
	})
}

// post sends an AdmissionReview as the API server does and decodes the answer.
func post(t *testing.T, c *http.Client, url string, body []byte) admissionv1.AdmissionReview {
	t.Helper()
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s = %d %s", url, resp.StatusCode, raw)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &review); err != nil {
		t.Fatalf("decoding answer %s: %v", raw, err)
	}
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" || review.Response == nil {
		t.Fatalf("answer is not an admission.k8s.io/v1 AdmissionReview with a response: %s", raw)
	}
	return review
}
