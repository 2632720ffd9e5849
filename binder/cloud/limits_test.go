package cloud

import (
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every call of API has AWS's documented bucket, and nothing else has one.
func TestAWSLimitsCoverAPI(t *testing.T) {
	t.Parallel()
	mutating, describe, tags := Bucket{Burst: 50, Rate: 5}, Bucket{Burst: 100, Rate: 20}, Bucket{Burst: 100, Rate: 10}
	want := Limits{
		"AllocateAddress":           mutating,
		"AssociateAddress":          mutating,
		"DisassociateAddress":       mutating,
		"ReleaseAddress":            mutating,
		"DescribeAddresses":         describe,
		"DescribeNetworkInterfaces": describe,
		"DescribeAccountAttributes": describe,
		"DescribeAvailabilityZones": describe,
		"CreateTags":                tags,
		"DeleteTags":                tags,
	}
	got := AWSLimits()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AWSLimits() = %v, want %v", got, want)
	}
	api := reflect.TypeFor[API]()
	if api.NumMethod() != len(got) {
		t.Errorf("API has %d methods, AWSLimits %d buckets", api.NumMethod(), len(got))
	}
	for i := range api.NumMethod() {
		if _, ok := got[api.Method(i).Name]; !ok {
			t.Errorf("AWSLimits has no bucket for %s", api.Method(i).Name)
		}
	}
}

func TestScaled(t *testing.T) {
	t.Parallel()
	l := Limits{"A": {Burst: 50, Rate: 5}, "B": {Burst: 100, Rate: 20}}
	for _, tc := range []struct {
		f    float64
		want Limits
	}{
		{1, l},
		{10, Limits{"A": {Burst: 500, Rate: 50}, "B": {Burst: 1000, Rate: 200}}},
		{0.5, Limits{"A": {Burst: 25, Rate: 2.5}, "B": {Burst: 50, Rate: 10}}},
		// Rounded as the emulator rounds, and never to an empty bucket.
		{0.01, Limits{"A": {Burst: 1, Rate: 0.05}, "B": {Burst: 1, Rate: 0.2}}},
		{0.03, Limits{"A": {Burst: 2, Rate: 0.15}, "B": {Burst: 3, Rate: 0.6}}},
	} {
		if got := l.Scaled(tc.f); !limitsNear(got, tc.want) {
			t.Errorf("Scaled(%v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	if l["A"].Burst != 50 {
		t.Errorf("Scaled changed its receiver: %v", l)
	}
	if got := Limits(nil).Scaled(2); got == nil || len(got) != 0 {
		t.Errorf("nil.Scaled(2) = %#v, want an empty map", got)
	}
}

func limitsNear(a, b Limits) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || x.Burst != y.Burst || x.Rate-y.Rate > 1e-9 || y.Rate-x.Rate > 1e-9 {
			return false
		}
	}
	return true
}

// An action outside the map, or with no positive rate, gets no bucket;
// the others start full.
func TestLimiterBuckets(t *testing.T) {
	t.Parallel()
	waited := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "w"}, []string{"action"})
	lim := newLimiter(Limits{"A": {Burst: 3, Rate: 1}, "Z": {Burst: 3}, "E": {Burst: 0, Rate: 1}}, waited)
	if _, ok := lim.buckets["Z"]; ok {
		t.Error("an action with no rate has a bucket")
	}
	if a := lim.buckets["A"]; a == nil || a.lim.Tokens() != 3 {
		t.Errorf("A's bucket = %v, want 3 tokens", a)
	}
	if e := lim.buckets["E"]; e == nil || e.lim.Burst() != 1 {
		t.Errorf("a burst of 0 became %v, want 1", e)
	}
}

// Headroom keeps every bucket's rate and takes calls off its burst, never
// leaving less than one.
func TestHeadroomTakesCallsOffEveryBurst(t *testing.T) {
	got := Limits{"A": {Burst: 50, Rate: 5}, "B": {Burst: 1, Rate: 2}}.Headroom(1)
	if got["A"] != (Bucket{Burst: 49, Rate: 5}) || got["B"] != (Bucket{Burst: 1, Rate: 2}) {
		t.Errorf("Headroom(1) = %v", got)
	}
}
