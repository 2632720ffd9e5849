package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kube_eip", Subsystem: "webhook", Name: "decisions_total",
		Help: "Admission decisions on pods, by operation and result (admitted, denied, ignored, exhausted).",
	}, []string{"operation", "result"})
	reservationAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kube_eip", Subsystem: "webhook", Name: "reservation_attempts_total",
		Help: "Attempts to reserve an address, by outcome (reserved, taken, error).",
	}, []string{"outcome"})
	workloadDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kube_eip", Subsystem: "webhook", Name: "workload_decisions_total",
		Help: "Admission decisions on workloads' pod templates, by kind, operation and result (admitted, warned, denied).",
	}, []string{"kind", "operation", "result"})
)

func init() {
	metrics.Registry.MustRegister(decisions, workloadDecisions, reservationAttempts)
}
