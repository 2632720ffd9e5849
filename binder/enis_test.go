package binder

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
)

func TestInstanceID(t *testing.T) {
	tests := []struct {
		providerID string
		want       string // "" for an error
	}{
		{"aws:///us-east-1a/i-0123456789abcdef0", "i-0123456789abcdef0"},
		{"aws://us-east-1a/i-0123456789abcdef0", "i-0123456789abcdef0"},
		{"aws:///us-east-1a/", ""},
		{"gce://project/zone/instance", ""},
		{"kind://docker/kind/kind-worker", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, err := instanceID(node("n", tc.providerID))
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("instanceID(%q) = %q, %v; want %q", tc.providerID, got, err, tc.want)
		}
	}
}

// The VPC CNI's pod-eni annotation names the branch ENI of a pod using
// security groups for pods; its address goes there.
func TestBranchTarget(t *testing.T) {
	tests := []struct {
		name       string
		annotation string // "" for none
		podIP      string
		want       Target
		wantBranch bool
		wantErr    bool
	}{
		{name: "none", podIP: "10.0.1.5"},
		{
			name:       "branch",
			annotation: `[{"eniId":"eni-0abc","ifAddress":"02:34:a5:20:c1:01","privateIp":"10.0.5.7","vlanId":1,"subnetCidr":"10.0.5.0/24"}]`,
			podIP:      "10.0.5.7", want: Target{ENI: "eni-0abc", PrivateIP: "10.0.5.7"}, wantBranch: true,
		},
		{
			name:       "private IP with a mask",
			annotation: `[{"eniId":"eni-0abc","privateIp":"10.0.5.7/24","vlanId":1}]`,
			podIP:      "10.0.5.7", want: Target{ENI: "eni-0abc", PrivateIP: "10.0.5.7"}, wantBranch: true,
		},
		{
			name:       "no private IP: the pod's",
			annotation: `[{"eniId":"eni-0abc","vlanId":1}]`,
			podIP:      "10.0.5.8", want: Target{ENI: "eni-0abc", PrivateIP: "10.0.5.8"}, wantBranch: true,
		},
		{name: "not JSON", annotation: `eni-0abc`, wantErr: true},
		{name: "empty list", annotation: `[]`, wantErr: true},
		{name: "no ENI id", annotation: `[{"privateIp":"10.0.5.7"}]`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}}, Status: corev1.PodStatus{PodIP: tc.podIP}}
			if tc.annotation != "" {
				pod.Annotations[api.AnnotationPodENI] = tc.annotation
			}
			got, branch, err := branchTarget(pod)
			if (err != nil) != tc.wantErr || branch != tc.wantBranch || got != tc.want {
				t.Errorf("branchTarget = %+v, %v, %v; want %+v, %v, error %v", got, branch, err, tc.want, tc.wantBranch, tc.wantErr)
			}
		})
	}
}

func TestAddressOn(t *testing.T) {
	target := Target{ENI: "eni-1", PrivateIP: "10.0.1.5"}
	tests := []struct {
		name string
		a    Address
		want bool
	}{
		{"there", Address{AssociationID: "eipassoc-1", ENI: "eni-1", PrivateIP: "10.0.1.5"}, true},
		{"other IP", Address{AssociationID: "eipassoc-1", ENI: "eni-1", PrivateIP: "10.0.1.6"}, false},
		{"other ENI", Address{AssociationID: "eipassoc-1", ENI: "eni-2", PrivateIP: "10.0.1.5"}, false},
		{"not associated", Address{ENI: "eni-1", PrivateIP: "10.0.1.5"}, false},
	}
	for _, tc := range tests {
		if got := tc.a.On(target); got != tc.want {
			t.Errorf("%s: On = %v, want %v", tc.name, got, tc.want)
		}
	}
}
