package fakenode

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestImageRepository(t *testing.T) {
	for in, want := range map[string]string{
		"kube-eip":                                 "kube-eip",
		"ghcr.io/kube-eip/kube-eip:v1.2.3":         "ghcr.io/kube-eip/kube-eip",
		"localhost:5000/kube-eip":                  "localhost:5000/kube-eip",
		"localhost:5000/kube-eip:dev":              "localhost:5000/kube-eip",
		"ghcr.io/kube-eip/kube-eip@sha256:abcd":    "ghcr.io/kube-eip/kube-eip",
		"ghcr.io/kube-eip/kube-eip:v1@sha256:abcd": "ghcr.io/kube-eip/kube-eip",
	} {
		if got := imageRepository(in); got != want {
			t.Errorf("imageRepository(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"plain":        "plain",
		"$(A)-$(B)":    "1-two",
		"$(MISSING)":   "$(MISSING)",
		"$$(A)":        "$(A)",
		"cost $5":      "cost $5",
		"unclosed $(A": "unclosed $(A",
		"trailing $":   "trailing $",
	} {
		if got := expand(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFormatMapMatchesTheKubelet(t *testing.T) {
	got := formatMap(map[string]string{"b": "x\"y", "a": "1", "kube-eip.io/public-ip": "203.0.113.7"})
	want := "a=\"1\"\nb=\"x\\\"y\"\nkube-eip.io/public-ip=\"203.0.113.7\""
	if got != want {
		t.Errorf("formatMap = %q, want %q", got, want)
	}
}

func TestProcessArgs(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", UID: "uid-1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "ip-192-168-0-10.ec2.internal"},
	}
	c := &corev1.Container{
		Command: []string{"/kube-eip", "wait"},
		Args:    []string{"--file=/etc/podinfo/labels", "--timeout=$(TIMEOUT)", "/etc/podinfo-extra/x"},
		Env: []corev1.EnvVar{
			{Name: "TIMEOUT", Value: "5m"},
			{Name: "NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "FILE", Value: "/etc/podinfo/labels"},
		},
	}
	mounts := map[string]string{"/etc/podinfo": "/work/v/podinfo", "/etc/podinfo-extra": "/work/v/extra"}
	k := &Kubelet{client: fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "shop"}, Data: map[string][]byte{"k": []byte("s3cret")},
	})}
	args, env, err := k.processArgs(pod, c, "192.168.0.20", "192.168.0.10", mounts)
	if err != nil {
		t.Fatal(err)
	}
	wantArgs := []string{"wait", "--file=/work/v/podinfo/labels", "--timeout=5m", "/work/v/extra/x"}
	if !slices.Equal(args, wantArgs) {
		t.Errorf("args = %q, want %q", args, wantArgs)
	}
	for _, want := range []string{"NAME=web-0", "IP=192.168.0.20", "APP=web", "FILE=/work/v/podinfo/labels", "TIMEOUT=5m"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %q", env, want)
		}
	}

	ref := func(name, key string, optional bool) corev1.EnvVar {
		return corev1.EnvVar{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: &optional}}}
	}
	base := c.Env
	c.Env = append(slices.Clip(base), ref("creds", "k", false))
	if _, env, err := k.processArgs(pod, c, "", "", nil); err != nil || !slices.Contains(env, "S=s3cret") {
		t.Errorf("a secretKeyRef gave %q, %v; want S=s3cret", env, err)
	}
	for _, bad := range []corev1.EnvVar{ref("creds", "nope", false), ref("missing", "k", false)} {
		c.Env = append(slices.Clip(base), bad)
		if _, _, err := k.processArgs(pod, c, "", "", nil); err == nil {
			t.Errorf("a reference to %s/%s was accepted", bad.ValueFrom.SecretKeyRef.Name, bad.ValueFrom.SecretKeyRef.Key)
		}
	}
	c.Env = append(slices.Clip(base), ref("missing", "k", true))
	if _, env, err := k.processArgs(pod, c, "", "", nil); err != nil || slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "S=") }) {
		t.Errorf("an optional reference to a missing secret gave %q, %v; want no S, as the kubelet sets none", env, err)
	}
	c.Env = append(slices.Clip(base), ref("creds", "nope", true))
	if _, env, err := k.processArgs(pod, c, "", "", nil); err != nil || slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "S=") }) {
		t.Errorf("an optional reference to a missing key gave %q, %v; want no S", env, err)
	}
}

func TestBackoffDoublesUpToItsCap(t *testing.T) {
	b := Backoff{Initial: 10 * time.Second, Max: 35 * time.Second}
	var got []time.Duration
	for n := int32(1); n <= 4; n++ {
		got = append(got, b.delay(n))
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 35 * time.Second, 35 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
}
