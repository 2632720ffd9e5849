package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kube-eip/kube-eip/api"
)

func template(annotations map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
}

// Each kind's count and surge are read as its controller reads them.
func TestDecodeWorkloadReadsEachKind(t *testing.T) {
	tpl := template(map[string]string{api.AnnotationMode: "auto"})
	meta := metav1.ObjectMeta{Name: "w", Namespace: "payments"}
	percent := intstr.FromString("50%")
	tests := []struct {
		kind            metav1.GroupVersionKind
		obj             any
		pods, surge     int
		path, podsField string
	}{
		{kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
			obj:  appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Template: tpl}},
			pods: 3, surge: 1, path: "spec.template", podsField: "spec.replicas"}, // 25% of 3, rounded up
		{kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
			obj: appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](5), Template: tpl,
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &percent}}}},
			pods: 5, surge: 3, path: "spec.template", podsField: "spec.replicas"},
		{kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
			obj: appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](5), Template: tpl,
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}},
			pods: 5, surge: 0, path: "spec.template", podsField: "spec.replicas"},
		{kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
			obj:  appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2), Template: tpl}},
			pods: 2, path: "spec.template", podsField: "spec.replicas"},
		{kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"},
			obj:  appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](4), Template: tpl}},
			pods: 4, path: "spec.template", podsField: "spec.replicas"},
		{kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"},
			obj:  appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Template: tpl}},
			pods: -1, path: "spec.template"},
		{kind: metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"},
			obj:  batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Parallelism: ptr.To[int32](3), Completions: ptr.To[int32](2), Template: tpl}},
			pods: 2, path: "spec.template", podsField: "spec.parallelism"},
		{kind: metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"},
			obj:  batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Parallelism: ptr.To[int32](3), Suspend: ptr.To(true), Template: tpl}},
			pods: 0, path: "spec.template", podsField: "spec.parallelism"},
		{kind: metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"},
			obj: batchv1.CronJob{ObjectMeta: meta, Spec: batchv1.CronJobSpec{Schedule: "* * * * *",
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Parallelism: ptr.To[int32](2), Template: tpl}}}},
			pods: 2, path: "spec.jobTemplate.spec.template", podsField: "spec.jobTemplate.spec.parallelism"},
	}
	for _, tt := range tests {
		t.Run(tt.kind.Kind, func(t *testing.T) {
			w, err := decodeWorkload(tt.kind, mustJSON(t, tt.obj))
			if err != nil {
				t.Fatal(err)
			}
			if w.Kind != tt.kind.Kind || w.Name != "w" || w.Pods != tt.pods || w.Surge != tt.surge || w.TemplatePath != tt.path || w.PodsField != tt.podsField {
				t.Errorf("got %+v", *w)
			}
			if w.Template.Annotations[api.AnnotationMode] != "auto" {
				t.Errorf("template not read: %v", w.Template.Annotations)
			}
		})
	}
	if _, err := decodeWorkload(metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, []byte(`{}`)); err == nil {
		t.Error("a pod decoded as a workload")
	}
}

func workloadReview(op admissionv1.Operation, kind metav1.GroupVersionKind, obj, old any, t *testing.T) admission.Request {
	var req admission.Request
	req.AdmissionRequest = admissionv1.AdmissionRequest{Operation: op, Namespace: "payments", Kind: kind}
	req.Object.Raw = mustJSON(t, obj)
	if old != nil {
		req.OldObject.Raw = mustJSON(t, old)
	}
	return req
}

// kubectl apply of a Deployment with a typo: refused with the message,
// which names the Deployment; with a pool too small, admitted with a
// warning; and an update that only scales down a Deployment whose pool is
// gone goes through.
func TestWorkloadHandlerRefusesAndWarns(t *testing.T) {
	h := &WorkloadHandler{State: workloadState(), Namespaces: func(_ context.Context, name string) (*corev1.Namespace, error) {
		return servedNamespace(name, map[string]string{"tenant": "payments"}), nil
	}}
	deployment := metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	deploy := func(replicas int32, annotations map[string]string) appsv1.Deployment {
		return appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "payments"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Template: template(annotations)}}
	}

	resp := h.Handle(t.Context(), workloadReview(admissionv1.Create, deployment, deploy(2, map[string]string{api.AnnotationMode: "autoo"}), nil, t))
	want := `Deployment "web" (spec.template): kube-eip.io/mode: unknown mode "autoo"; did you mean "auto"? (one of auto, pool, sticky)`
	if resp.Allowed || resp.Result.Message != want {
		t.Errorf("typo: allowed %t, message %q; want refused with %q", resp.Allowed, resp.Result.Message, want)
	}

	pool := map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "one-free"}
	resp = h.Handle(t.Context(), workloadReview(admissionv1.Create, deployment, deploy(3, pool), nil, t))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "has 1 free address for 3 pods") {
		t.Errorf("small pool: allowed %t, warnings %q; want admitted with the numbers", resp.Allowed, resp.Warnings)
	}

	gone := map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "deleted"}
	resp = h.Handle(t.Context(), workloadReview(admissionv1.Update, deployment, deploy(1, gone), deploy(3, gone), t))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `EIPPool "deleted" does not exist`) {
		t.Errorf("scale-down: allowed %t, warnings %q; want admitted, warned", resp.Allowed, resp.Warnings)
	}

	resp = h.Handle(t.Context(), workloadReview(admissionv1.Create, deployment, json.RawMessage(`{"spec":{"replicas":"three"}}`), nil, t))
	if resp.Allowed || resp.Result.Code != 400 {
		t.Errorf("undecodable: allowed %t, code %d; want a 400", resp.Allowed, resp.Result.Code)
	}
}

// sink records reports, as owners.Reporter would queue them.
type sink struct{ reports []string }

func (s *sink) Report(pod metav1.Object, reason, _, note string) {
	owner := metav1.GetControllerOf(pod)
	s.reports = append(s.reports, owner.Kind+"/"+owner.Name+" "+reason+" "+note)
}

// A pod a controller creates and admission refuses never exists: the
// refusal goes to the workload behind it, except in a dry run.
func TestRefusedPodsAreReportedToTheirController(t *testing.T) {
	h := testHandlerImpl()
	s := &sink{}
	h.Refusals = s
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-7d9c-", Namespace: "payments",
			Annotations:     map[string]string{api.AnnotationMode: "pool", api.AnnotationPool: "gone"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9c", UID: "rs-uid", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	for _, dryRun := range []bool{true, false} {
		var req admission.Request
		req.AdmissionRequest = admissionv1.AdmissionRequest{Operation: admissionv1.Create, Namespace: "payments", DryRun: ptr.To(dryRun)}
		req.Object.Raw = mustJSON(t, pod)
		if resp := h.Handle(t.Context(), req); resp.Allowed {
			t.Fatal("a pod of a pool that does not exist was admitted")
		}
	}
	if len(s.reports) != 1 || !strings.HasPrefix(s.reports[0], `ReplicaSet/web-7d9c EIPRefused pods are refused at creation: kube-eip.io/pool: EIPPool "gone" does not exist`) {
		t.Errorf("reports: %q; want the one outside the dry run, on the ReplicaSet", s.reports)
	}
}
