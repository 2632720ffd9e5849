package stack

import (
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kube-eip/kube-eip/deploy"
	"github.com/kube-eip/kube-eip/e2e/ec2sim"
)

// Values a test gives are merged map by map over the stack's: a nested
// key replaces only itself.
func TestMergeValues(t *testing.T) {
	values := map[string]any{
		"clusterName": "e2e",
		"webhook":     map[string]any{"replicas": 2, "extraArgs": []string{"--claim-ttl=1m"}},
	}
	mergeValues(values, map[string]any{
		"webhook":     map[string]any{"failurePolicy": "Ignore", "extraArgs": []string{}},
		"certManager": map[string]any{"enabled": false},
	})
	want := map[string]any{
		"clusterName": "e2e",
		"webhook":     map[string]any{"replicas": 2, "extraArgs": []string{}, "failurePolicy": "Ignore"},
		"certManager": map[string]any{"enabled": false},
	}
	if !reflect.DeepEqual(values, want) {
		t.Errorf("merged = %v, want %v", values, want)
	}
}

// The binder's pods get the emulator's credentials, and none of the
// variables that would point the SDK elsewhere than --ec2-endpoint.
func TestCredentialData(t *testing.T) {
	s := &Stack{EC2: &ec2sim.Server{URL: "http://127.0.0.1:4566"}}
	got := credentialData(s.awsCredentials())
	want := map[string][]byte{"AWS_ACCESS_KEY_ID": []byte(accessKeyID), "AWS_SECRET_ACCESS_KEY": []byte(secretAccessKey)}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("credentials %q, want %q", got, want)
	}
	for key := range got {
		if !slices.Contains(deploy.AWSCredentialKeys, key) {
			t.Errorf("key %s is not one the binder's Deployment reads", key)
		}
	}
}

// The pods are tuned as the processes are, from the same Options.
func TestTuningFlags(t *testing.T) {
	if got := webhookTuning(Options{}); len(got) != 0 {
		t.Errorf("default webhook tuning %v, want none", got)
	}
	got := webhookTuning(Options{WaitTimeout: 2 * time.Minute})
	if want := []string{"--wait-timeout=2m0s"}; !slices.Equal(got, want) {
		t.Errorf("webhook tuning %v, want %v", got, want)
	}
	if got := binderTuning(BinderOptions{}); len(got) != 0 {
		t.Errorf("default binder tuning %v, want none", got)
	}
	got = binderTuning(BinderOptions{SweepInterval: time.Second, OrphanGrace: time.Minute, ClaimTTL: 10 * time.Second, RateScale: 100, Workers: 4, ExtraArgs: []string{"--x=y"}})
	want := []string{"--sweep-interval=1s", "--orphan-grace=1m0s", "--claim-ttl=10s", "--ec2-rate-scale=100", "--workers=4", "--x=y"}
	if !slices.Equal(got, want) {
		t.Errorf("binder tuning %v, want %v", got, want)
	}
}
