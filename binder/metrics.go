package binder

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	binds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "binds_total",
		Help: "Addresses associated with pods, by mode.",
	}, []string{"mode"})
	releases = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "releases_total",
		Help: "Addresses taken off deleted or finished pods, by what became of them (released, returned, kept).",
	}, []string{"outcome"})
	bindLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "bind_duration_seconds",
		Help:    "Time from the binder first seeing a pod with an IP to the pod being labelled with its address.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
	sweepOrphans = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "sweep_repairs_total",
		Help: "Drift the periodic sweep repaired, by kind (orphan_released, stale_disassociated, reservation_freed, association_restored).",
	}, []string{"kind"})
	sweepDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "sweep_duration_seconds",
		Help:    "Duration of the periodic reconciliation of EC2 against the cluster.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
	})
	refusals = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "refusals_total",
		Help: "Looks at managed pods that were not authorized for what they ask (an EIPRefused event each); nothing was done for them.",
	})
	quotaFull = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "quota_exhausted",
		Help: "1 while the account's Elastic IP quota is used up and allocations are paused, else 0.",
	})
	quotaWaiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "pods_waiting_for_quota",
		Help: "Pods waiting for room in the account's Elastic IP quota to be allocated an address.",
	})
	inventorySize = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "addresses",
		Help: "Addresses the binder tracks, by state (associated, idle).",
	}, []string{"state"})
	failovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "floating_failovers_total",
		Help: "Floating addresses moved off a failed node, by why (lease, not_ready, cordoned, removed, other).",
	}, []string{"reason"})
	failoverDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "floating_failover_seconds",
		Help:    "From the failed holder's last Lease renewal to the floating address's association with the new one.",
		Buckets: []float64{1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120},
	})
	reclaimed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kube_eip", Subsystem: "binder", Name: "reservations_reclaimed_total",
		Help: "Reservations deleted because the pod they were made for never appeared within the claim TTL.",
	})
)

func init() {
	metrics.Registry.MustRegister(binds, releases, bindLatency, sweepOrphans, sweepDuration, refusals, quotaFull, quotaWaiting, inventorySize, failovers, failoverDuration, reclaimed)
}
