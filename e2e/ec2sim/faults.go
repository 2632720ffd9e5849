package ec2sim

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"time"
)

// FaultSpec is what goes wrong with calls of one action.
type FaultSpec struct {
	// InternalErrorRate is the fraction of calls answered 500 InternalError.
	InternalErrorRate float64
	// UnavailableRate is the fraction of calls answered 503 Unavailable.
	UnavailableRate float64
	// Latency is added to every call before it is handled.
	Latency time.Duration
	// AfterApply makes the injected errors happen after the action took
	// effect: EC2's ambiguous failure, which callers must survive by
	// checking before retrying non-idempotent calls.
	AfterApply bool
}

// Faults configure fault injection: a default for all actions, replaced
// (not merged) for the actions listed. It is a flag.Value taking the same
// JSON that POST /_sim/faults does, e.g.
// {"default":{"internalErrorRate":0.05},"actions":{"AssociateAddress":{"latency":"50ms"}}}.
type Faults struct {
	Default FaultSpec            `json:"default"`
	Actions map[string]FaultSpec `json:"actions,omitempty"`
}

type faultSpecJSON struct {
	InternalErrorRate float64 `json:"internalErrorRate,omitempty"`
	UnavailableRate   float64 `json:"unavailableRate,omitempty"`
	Latency           string  `json:"latency,omitempty"`
	AfterApply        bool    `json:"afterApply,omitempty"`
}

// MarshalJSON writes the latency as a Go duration string ("50ms").
func (f FaultSpec) MarshalJSON() ([]byte, error) {
	j := faultSpecJSON{InternalErrorRate: f.InternalErrorRate, UnavailableRate: f.UnavailableRate, AfterApply: f.AfterApply}
	if f.Latency > 0 {
		j.Latency = f.Latency.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the latency as a Go duration string.
func (f *FaultSpec) UnmarshalJSON(b []byte) error {
	var j faultSpecJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = FaultSpec{InternalErrorRate: j.InternalErrorRate, UnavailableRate: j.UnavailableRate, AfterApply: j.AfterApply}
	if j.Latency != "" {
		d, err := time.ParseDuration(j.Latency)
		if err != nil {
			return fmt.Errorf("parsing latency %q: %w", j.Latency, err)
		}
		f.Latency = d
	}
	return nil
}

func (f FaultSpec) validate() error {
	switch {
	case f.InternalErrorRate < 0 || f.UnavailableRate < 0 || f.InternalErrorRate+f.UnavailableRate > 1:
		return fmt.Errorf("error rates %v and %v must be non-negative and sum to at most 1", f.InternalErrorRate, f.UnavailableRate)
	case f.Latency < 0:
		return fmt.Errorf("latency %v must not be negative", f.Latency)
	}
	return nil
}

// Validate refuses rates outside [0,1] and actions the emulator lacks.
func (f Faults) Validate() error {
	if err := f.Default.validate(); err != nil {
		return fmt.Errorf("default faults: %w", err)
	}
	for _, name := range sortedKeys(f.Actions) {
		if _, ok := actions[name]; !ok {
			return fmt.Errorf("faults for %s: unknown action (known: %v)", name, Actions())
		}
		if err := f.Actions[name].validate(); err != nil {
			return fmt.Errorf("faults for %s: %w", name, err)
		}
	}
	return nil
}

// String and Set make Faults a flag.Value.
func (f *Faults) String() string {
	if f == nil {
		return ""
	}
	b, _ := json.Marshal(f)
	return string(b)
}

// Set parses the JSON form.
func (f *Faults) Set(s string) error {
	var parsed Faults
	if err := json.Unmarshal([]byte(s), &parsed); err != nil {
		return fmt.Errorf("parsing faults: %w", err)
	}
	if err := parsed.Validate(); err != nil {
		return err
	}
	*f = parsed
	return nil
}

func (f Faults) clone() Faults {
	return Faults{Default: f.Default, Actions: maps.Clone(f.Actions)}
}

// faultInjector draws the fault, if any, of each call.
type faultInjector struct {
	mu  sync.Mutex
	cfg Faults
	rng *rand.Rand
}

type faultDraw struct {
	latency    time.Duration
	err        *apiError
	afterApply bool
}

func (f *faultInjector) draw(action string) faultDraw {
	f.mu.Lock()
	defer f.mu.Unlock()
	spec, ok := f.cfg.Actions[action]
	if !ok {
		spec = f.cfg.Default
	}
	d := faultDraw{latency: spec.Latency, afterApply: spec.AfterApply}
	if spec.InternalErrorRate+spec.UnavailableRate > 0 {
		switch x := f.rng.Float64(); {
		case x < spec.InternalErrorRate:
			d.err = errInternal
		case x < spec.InternalErrorRate+spec.UnavailableRate:
			d.err = errUnavailable
		}
	}
	return d
}

func (f *faultInjector) set(cfg Faults) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = cfg.clone()
}

func (f *faultInjector) get() Faults {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg.clone()
}
