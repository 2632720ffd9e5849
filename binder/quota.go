package binder

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// quotaGate makes the account's Elastic IP quota a state the binder shares
// across pods, not an error each pod meets alone. Without it, every pod
// waiting for an address called AllocateAddress on its own backoff: one
// burst of 85 pods over a full quota made 240 refused calls, spent its
// Allocate bucket on them, and took about a minute to notice an address
// freed.
//
// An allocation first asks the gate. The gate says no while the account is
// known to be full: the quota EC2 reports, against the addresses the sweep
// counted plus what the binder allocated and released since, or, when the
// quota is not known, after an AllocateAddress answered
// AddressLimitExceeded. A pod told no waits in line (one event each, no
// calls) and is woken, one per address, when the binder releases an
// address, when the sweep sees room (someone else released one, or the
// quota was raised), or, with no known quota, to probe once per sweep.
type quotaGate struct {
	mu sync.Mutex
	// quota is the account's, known once the sweep read it.
	quota int
	known bool
	// inUse is the addresses the region holds: the sweep's count, plus the
	// binder's allocations, less its releases, since.
	inUse int
	// inFlight are allocations the gate let through that have not ended.
	inFlight int
	// full is set by an AddressLimitExceeded and cleared by room seen.
	full bool
	// waiting are the pods told no, first come first woken.
	waiting []types.NamespacedName
	queued  map[types.NamespacedName]bool
	// woken are pods taken off the line for room that is theirs until they
	// come (or the next sweep counts again): a pod that never waited does
	// not take it from them.
	woken map[types.NamespacedName]bool
	// told are the pods that heard they wait, until they get an address:
	// one event each, however often they are woken and put back.
	told map[types.NamespacedName]bool
}

func newQuotaGate() *quotaGate {
	return &quotaGate{queued: map[types.NamespacedName]bool{}, woken: map[types.NamespacedName]bool{}, told: map[types.NamespacedName]bool{}}
}

// admit lets pod allocate now, or puts it in line. newlyWaiting is true the
// first time a pod is put in line, for its one event.
func (q *quotaGate) admit(pod types.NamespacedName) (ok, newlyWaiting bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// Room kept for woken pods is theirs; a pod that did not wait goes only
	// behind those that do.
	kept := len(q.woken)
	if q.woken[pod] {
		kept--
	} else if len(q.waiting) > 0 && !q.queued[pod] {
		return false, q.wait(pod, false)
	}
	if !q.full && (!q.known || q.inUse+q.inFlight+kept < q.quota) && (q.known || q.woken[pod] || kept == 0) {
		q.inFlight++
		q.drop(pod)
		delete(q.woken, pod)
		return true, false
	}
	return false, q.wait(pod, false)
}

// tryAdmit lets an allocation for no pod through (a pool's growth) only
// when no pod waits and the account has room.
func (q *quotaGate) tryAdmit() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) > 0 || len(q.woken) > 0 || q.full || q.known && q.inUse+q.inFlight >= q.quota {
		return false
	}
	q.inFlight++
	return true
}

// done ends an allocation admit let through: allocated, or refused for the
// quota (then the account is full, and pod waits in line first). With no
// known quota, an allocation that succeeds wakes the next pod in line: the
// probe found room, perhaps for more.
func (q *quotaGate) done(pod types.NamespacedName, allocated, quotaExceeded bool) []types.NamespacedName {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inFlight--
	switch {
	case allocated:
		q.inUse++
		delete(q.told, pod)
		if !q.known {
			return q.wake(1)
		}
	case quotaExceeded:
		q.setFull(true)
		if q.known {
			q.inUse = max(q.inUse, q.quota)
		}
		if pod != (types.NamespacedName{}) {
			// It asked first: it is the first woken when room comes.
			q.wait(pod, true)
		}
	}
	return nil
}

// freed records that the binder released n addresses, and returns the pods
// to wake, one for each.
func (q *quotaGate) freed(n int) []types.NamespacedName {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inUse = max(0, q.inUse-n)
	q.setFull(false)
	return q.wake(n)
}

// setQuota takes in the quota EC2 reported; known is false when it did not.
func (q *quotaGate) setQuota(quota int, known bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.quota, q.known = quota, known
}

// limit is the quota, if known.
func (q *quotaGate) limit() (quota int, known bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.quota, q.known
}

// observed takes in the sweep's count of the region's addresses, and
// returns the pods to wake: as many as there is room for, or, with no
// known quota while full, one to probe.
func (q *quotaGate) observed(inUse int) []types.NamespacedName {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inUse = inUse
	// Counted afresh: pods woken before and not come since go back first.
	for p := range q.woken {
		q.wait(p, true)
	}
	clear(q.woken)
	if !q.known {
		if q.full {
			// Only an allocation can tell whether there is room now.
			q.setFull(false)
			return q.wake(1)
		}
		return q.wake(len(q.waiting))
	}
	room := q.quota - q.inUse - q.inFlight
	if room <= 0 {
		return nil
	}
	q.setFull(false)
	return q.wake(room)
}

// forget takes a pod out of line: it went, or needs no allocation now.
func (q *quotaGate) forget(pod types.NamespacedName) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.drop(pod)
	delete(q.woken, pod)
	delete(q.told, pod)
}

// wait puts pod in line, at its head if first, and reports whether the pod
// is to be told.
func (q *quotaGate) wait(pod types.NamespacedName, first bool) bool {
	if !q.queued[pod] {
		q.queued[pod] = true
		if first {
			q.waiting = append([]types.NamespacedName{pod}, q.waiting...)
		} else {
			q.waiting = append(q.waiting, pod)
		}
	}
	quotaWaiting.Set(float64(len(q.waiting)))
	tell := !q.told[pod]
	q.told[pod] = true
	return tell
}

// wake takes up to n pods off the line, first come first. They stay
// marked as having waited only until they are admitted.
func (q *quotaGate) wake(n int) []types.NamespacedName {
	n = min(n, len(q.waiting))
	woken := append([]types.NamespacedName(nil), q.waiting[:n]...)
	q.waiting = q.waiting[n:]
	for _, p := range woken {
		delete(q.queued, p)
		q.woken[p] = true
	}
	quotaWaiting.Set(float64(len(q.waiting)))
	return woken
}

func (q *quotaGate) drop(pod types.NamespacedName) {
	if !q.queued[pod] {
		return
	}
	delete(q.queued, pod)
	for i, p := range q.waiting {
		if p == pod {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			break
		}
	}
	quotaWaiting.Set(float64(len(q.waiting)))
}

func (q *quotaGate) setFull(full bool) {
	q.full = full
	if full {
		quotaFull.Set(1)
	} else {
		quotaFull.Set(0)
	}
}

// quotaWait is why a pod gets no address now: the account's quota is used
// up. The pod waits in the gate's line; tell is set the first time, for
// its one event.
type quotaWait struct{ tell bool }

func (*quotaWait) Error() string {
	return "the account's Elastic IP quota is used up: the pod waits for an address to be released, or for the quota to be raised (Service Quotas: EC2-VPC Elastic IPs)"
}

// quotaRecheck looks at a waiting pod again even if no wake reaches it: a
// wake is dropped when the requeue channel is full.
const quotaRecheck = 2 * time.Minute

// wakeAll requeues pods the gate let go.
func (b *Binder) wakeAll(pods []types.NamespacedName) {
	for _, p := range pods {
		b.enqueue(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name}})
	}
}
