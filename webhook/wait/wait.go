// Package wait is the logic of the kube-eip-wait init container: it holds
// a pod's application back until the binder has associated the pod's
// Elastic IP, which it learns from the pod's own labels through a
// downward-API volume the kubelet keeps current.
package wait

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
)

// Run blocks until the labels file shows the label with an IPv4 address,
// then writes one line naming it to Out. It gives up with an error wrapping
// ErrTimeout after Timeout, or ErrCanceled as soon as ctx ends.
func Run(ctx context.Context, opts Options) error {
	o, err := opts.complete()
	if err != nil {
		return fmt.Errorf("checking options: %w", err)
	}
	log := o.Log
	if log.GetSink() == nil {
		log = logr.FromContextOrDiscard(ctx)
	}
	log = log.WithValues("label", o.Label, "file", o.LabelsFile)
	start := time.Now()

	// Watch before the first read: a change between the two is then seen
	// either by the read or by the watch.
	watch := newDirWatch(o.LabelsFile, log)
	defer watch.close()
	r := &labelsReader{file: o.LabelsFile, label: o.Label, log: log}
	if addr, ok := r.address(); ok {
		return announce(o, addr, time.Since(start))
	}
	log.Info("waiting for the Elastic IP label", "timeout", o.Timeout.String(), "found", r.seen)

	timeout := time.NewTimer(o.Timeout)
	defer timeout.Stop()
	poll := time.NewTicker(o.PollInterval)
	defer poll.Stop()
	progress := time.NewTicker(o.ProgressInterval)
	defer progress.Stop()
	for {
		select {
		case <-ctx.Done():
			return canceledError(ctx, o, time.Since(start))
		case <-timeout.C:
			// A last read, so that a label that arrived with the deadline
			// is not lost to the order in which select picks.
			if addr, ok := r.address(); ok {
				return announce(o, addr, time.Since(start))
			}
			return timeoutError(o, time.Since(start), r.seen)
		case <-progress.C:
			waited := time.Since(start)
			log.Info("still waiting for "+o.Label, "waited", round(waited).String(),
				"timeoutIn", round(o.Timeout-waited).String(), "found", r.seen)
			continue
		case <-poll.C:
			watch.ensure()
		case ev, open := <-watch.events():
			watch.handle(ev, open)
		case err, open := <-watch.errors():
			watch.handleError(err, open)
		}
		if addr, ok := r.address(); ok {
			return announce(o, addr, time.Since(start))
		}
	}
}

func announce(o Options, addr netip.Addr, waited time.Duration) error {
	if _, err := fmt.Fprintf(o.Out, "kube-eip: public IP %s attached (waited %s)\n", addr, round(waited)); err != nil {
		return fmt.Errorf("announcing the public IP: %w", err)
	}
	return nil
}
