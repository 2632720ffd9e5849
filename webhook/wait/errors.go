package wait

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kube-eip/kube-eip/api"
)

var (
	// ErrTimeout is wrapped by the error of a wait that ran out of time.
	ErrTimeout = errors.New("timed out")
	// ErrCanceled is wrapped by the error of a wait whose context ended
	// (SIGTERM: the pod is being deleted), together with the context's
	// cause.
	ErrCanceled = errors.New("canceled")
)

// timeoutError explains a timeout to someone reading the init container's
// log or its termination message: what was awaited, for how long, what the
// file showed last, and where the reason is likely written down.
func timeoutError(o Options, waited time.Duration, seen string) error {
	return fmt.Errorf("%w after %s waiting for label %s to hold an IPv4 address in %s (last read: %s); "+
		"check the pod's events from kube-eip (kubectl describe pod), the kube-eip binder's logs, "+
		"and the pod's %s annotations",
		ErrTimeout, round(waited), o.Label, o.LabelsFile, seen, api.Prefix)
}

func canceledError(ctx context.Context, o Options, waited time.Duration) error {
	return fmt.Errorf("%w after %s waiting for label %s: %w",
		ErrCanceled, round(waited), o.Label, context.Cause(ctx))
}

// round keeps durations in messages readable (1.2s, not 1.234567891s).
func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
