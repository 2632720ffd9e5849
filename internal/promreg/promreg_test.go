package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterSharesAnEqualCollectorAndRefusesAClash(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "x_total", Help: "x"}
	first, err := Register(reg, prometheus.NewCounterVec(opts, []string{"a"}))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Register(reg, prometheus.NewCounterVec(opts, []string{"a"}))
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Error("a second equal collector was not replaced by the one registered")
	}
	if _, err := Register(reg, prometheus.NewCounterVec(opts, []string{"b"})); err == nil {
		t.Error("a collector of the same name with other labels was accepted")
	}
}
