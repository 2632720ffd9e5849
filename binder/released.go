package binder

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// releasedPods remembers the pods whose address the binder gave back, by
// UID, until the pod is gone: a pod keeps coming back to the reconciler
// while it terminates (the kubelet's status updates, the deletion), and
// each visit would otherwise look for an address that is no more, one
// DescribeAddresses answered NotFound each time. A binder that restarts
// forgets, and releases once more: every step of a release is idempotent.
type releasedPods struct {
	mu sync.Mutex
	at map[types.UID]time.Time
}

func newReleasedPods() *releasedPods { return &releasedPods{at: map[types.UID]time.Time{}} }

func (r *releasedPods) add(uid types.UID, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at[uid] = now
}

func (r *releasedPods) has(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.at[uid]
	return ok
}

// forgetGone drops the pods that are gone: not live in a list of pods
// taken at listed, and released before it.
func (r *releasedPods) forgetGone(live func(types.UID) bool, listed time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for uid, at := range r.at {
		if !live(uid) && at.Before(listed) {
			delete(r.at, uid)
		}
	}
}
