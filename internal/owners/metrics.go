package owners

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	reported = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kube_eip", Name: "workload_refusals_reported_total",
		Help: "Refusals of pods recorded as Events on the workload a user applied, by the workload's kind.",
	}, []string{"kind"})
	dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kube_eip", Name: "workload_refusals_dropped_total",
		Help: "Refusals of pods not recorded on their workload because too many waited already.",
	})
)

func init() {
	metrics.Registry.MustRegister(reported, dropped)
}
