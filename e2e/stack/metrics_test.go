package stack

import "testing"

func TestSumSamples(t *testing.T) {
	page := `# HELP calls_total Calls.
# TYPE calls_total counter
calls_total{action="A",code="OK"} 3
calls_total{action="B",code="RequestLimitExceeded"} 2
calls_total_other 100
sweeps 7
`
	tests := []struct {
		name  string
		match []string
		want  float64
	}{
		{name: "calls_total", want: 5},
		{name: "calls_total", match: []string{`code="RequestLimitExceeded"`}, want: 2},
		{name: "calls_total", match: []string{`action="A"`, `code="OK"`}, want: 3},
		{name: "sweeps", want: 7},
		{name: "absent", want: 0},
	}
	for _, tt := range tests {
		if got := SumSamples(page, tt.name, tt.match...); got != tt.want {
			t.Errorf("SumSamples(%s, %v) = %v, want %v", tt.name, tt.match, got, tt.want)
		}
	}
}
