package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// selftestClient answers pod creations with the errors given in turn, and
// then with the last one.
func selftestClient(errs ...error) *fake.Clientset {
	kube := fake.NewClientset()
	kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if !slices.Contains(a.(k8stesting.CreateActionImpl).CreateOptions.DryRun, "All") {
			return true, nil, errors.New("not a dry run")
		}
		err := errs[0]
		if len(errs) > 1 {
			errs = errs[1:]
		}
		return true, nil, err
	})
	return kube
}

func TestSelftestPassesOnTheWebhooksDenial(t *testing.T) {
	denial := errors.New(`admission webhook "pods.kube-eip.io" denied the request: kube-eip.io/pool: EIPPool "kube-eip-selftest-no-such-pool" not found`)
	kube := selftestClient(errors.New(`Internal error occurred: failed calling webhook "pods.kube-eip.io": connection refused`), denial)
	msg, err := selftest(context.Background(), kube, "t", "pause", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg != denial.Error() {
		t.Fatalf("answer %q, want the denial", msg)
	}
}

func TestSelftestFailsWhenTheWebhookNeverAnswers(t *testing.T) {
	kube := selftestClient(errors.New(`failed calling webhook "pods.kube-eip.io": connection refused`))
	_, err := selftest(context.Background(), kube, "t", "pause", 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want the last failure", err)
	}
}

func TestSelftestFailsWhenThePodIsAdmittedUnseen(t *testing.T) {
	kube := fake.NewClientset()
	_, err := selftest(context.Background(), kube, "t", "pause", time.Second)
	if err == nil || !strings.Contains(err.Error(), "without kube-eip's webhook") {
		t.Fatalf("err = %v", err)
	}
}
