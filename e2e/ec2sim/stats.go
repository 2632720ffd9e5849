package ec2sim

import (
	"maps"
	"sync"
)

// Stats count calls per action and answers per error code, as GET
// /_sim/stats shows them: what a test asserts to prove a caller stays
// within its call budget.
type Stats struct {
	// Calls is every API call, answered or refused.
	Calls int64 `json:"calls"`
	// Errors counts error answers by code across all actions.
	Errors map[string]int64 `json:"errors"`
	// Actions breaks both down per action.
	Actions map[string]ActionStats `json:"actions"`
}

// ActionStats are the calls and error answers of one action.
type ActionStats struct {
	Calls  int64            `json:"calls"`
	Errors map[string]int64 `json:"errors,omitempty"`
}

type statsRecorder struct {
	mu sync.Mutex
	s  Stats
}

func newStatsRecorder() *statsRecorder {
	r := &statsRecorder{}
	r.reset()
	return r
}

// record counts one call; code is "" for a success.
func (r *statsRecorder) record(action, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.Calls++
	a := r.s.Actions[action]
	a.Calls++
	if code != "" {
		r.s.Errors[code]++
		if a.Errors == nil {
			a.Errors = map[string]int64{}
		}
		a.Errors[code]++
	}
	r.s.Actions[action] = a
}

func (r *statsRecorder) snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Stats{Calls: r.s.Calls, Errors: maps.Clone(r.s.Errors), Actions: make(map[string]ActionStats, len(r.s.Actions))}
	for name, a := range r.s.Actions {
		out.Actions[name] = ActionStats{Calls: a.Calls, Errors: maps.Clone(a.Errors)}
	}
	return out
}

func (r *statsRecorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s = Stats{Errors: map[string]int64{}, Actions: map[string]ActionStats{}}
}
