package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/webhook"
)

// selftestPool names a pool that must not exist: the webhook refuses a pod
// that asks for it, which proves that it answered without reserving
// anything (and a dry run reserves nothing anyway).
const selftestPool = "kube-eip-selftest-no-such-pool"

// selftestFlags is the command line of the chart's helm test: a dry-run
// pod in an opted-in namespace, which kube-eip's webhook must answer.
func selftestFlags(fs *flag.FlagSet) runFunc {
	var namespace, image string
	var timeout time.Duration
	fs.StringVar(&namespace, "namespace", "", "a namespace labelled "+api.LabelInjection+"=enabled to dry-run the pod in (required)")
	fs.StringVar(&image, "image", "registry.k8s.io/pause:3.10", "the dry-run pod's image (never pulled)")
	fs.DurationVar(&timeout, "timeout", time.Minute, "how long to retry while the webhook is unreachable")
	return func(ctx context.Context, stdout io.Writer) error {
		if namespace == "" {
			return errors.New("--namespace is required")
		}
		cfg, err := apiConfig()
		if err != nil {
			return err
		}
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		msg, err := selftest(ctx, kube, namespace, image, timeout)
		if err != nil {
			return err
		}
		printf(stdout, "kube-eip's webhook answered a dry-run pod in %s: %s\n", namespace, msg)
		return nil
	}
}

// selftest dry-runs an annotated pod until kube-eip's webhook answers it,
// and returns the webhook's answer.
func selftest(ctx context.Context, kube kubernetes.Interface, namespace, image string, timeout time.Duration) (string, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "kube-eip-selftest-",
			Annotations:  map[string]string{api.AnnotationPool: selftestPool},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "selftest", Image: image}},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
	}
	denied := fmt.Sprintf("admission webhook %q denied the request", webhook.WebhookName)
	var answer string
	var last error
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case err == nil:
			return false, fmt.Errorf("the pod was admitted without kube-eip's webhook: is namespace %s labelled %s=enabled, and the webhook configuration installed?", namespace, api.LabelInjection)
		case strings.Contains(err.Error(), denied):
			answer = err.Error()
			return true, nil
		default:
			last = err // unreachable, not ready yet, or refused by someone else
			return false, nil
		}
	})
	if err != nil && last != nil {
		return "", fmt.Errorf("kube-eip's webhook did not answer within %s: %w", timeout, last)
	}
	return answer, err
}
