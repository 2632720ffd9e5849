package ec2sim

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Sim is the emulator: an http.Handler answering the EC2 Query API on every
// path but /_sim/, where its own endpoints live (see admin.go).
type Sim struct {
	opts Options

	mu    sync.Mutex // guards world
	world *world

	throttle *throttler
	faults   *faultInjector
	stats    *statsRecorder
	admin    http.Handler
	saver    *saver

	closeOnce sync.Once
	closeErr  error
}

// New builds an emulator, loading Options.StateFile when it exists. Close
// it to write the final state.
func New(opts Options) (*Sim, error) {
	opts = opts.withDefaults()
	if err := opts.Faults.Validate(); err != nil {
		return nil, fmt.Errorf("validating faults: %w", err)
	}
	pools, err := parsePools(opts.PublicIPv4Pools)
	if err != nil {
		return nil, err
	}
	seed := opts.Seed
	if seed == 0 {
		seed = randomSeed()
	}
	// Two streams from one seed: fault draws must not shift the ids.
	seed1, seed2 := seed, seed^0x9e3779b97f4a7c15
	s := &Sim{
		opts:     opts,
		world:    newWorld(opts, newRNG(seed1, seed2), pools),
		throttle: newThrottler(opts.Throttle, opts.Clock),
		faults:   &faultInjector{cfg: opts.Faults.clone(), rng: newRNG(seed2, seed1)},
		stats:    newStatsRecorder(),
	}
	s.admin = s.adminHandler()
	var saved *State
	if opts.StateFile != "" {
		if saved, err = readStateFile(opts.StateFile); err != nil {
			return nil, err
		}
	}
	if saved != nil {
		if err := s.world.load(*saved); err != nil {
			return nil, fmt.Errorf("loading state file %s: %w", opts.StateFile, err)
		}
	}
	if len(s.world.vpcs) == 0 {
		s.world.buildLayout(opts.ClusterName)
	}
	if opts.StateFile != "" {
		s.saver = newSaver(opts.StateFile, opts.SaveDelay, s.Snapshot, opts.Clock, opts.Logf)
		s.saver.changed() // record the layout's ids, and that the file is writable
	}
	return s, nil
}

func parsePools(in map[string]string) (map[string]netip.Prefix, error) {
	out := make(map[string]netip.Prefix, len(in))
	for id, cidr := range in {
		p, err := netip.ParsePrefix(cidr)
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("public IPv4 pool %s: %q is not an IPv4 CIDR", id, cidr)
		}
		if !strings.HasPrefix(id, "ipv4pool-ec2-") {
			return nil, fmt.Errorf("public IPv4 pool %s: ids look like ipv4pool-ec2-<hex>", id)
		}
		out[id] = p.Masked()
	}
	return out, nil
}

// maxRequestBody bounds what one call may send; EC2 requests are small.
const maxRequestBody = 1 << 20

// ServeHTTP answers one EC2 Query call: find the action, draw from its
// token bucket, inject faults, honour DryRun, run it, and write the XML.
// Signatures are not checked; any credentials do.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.admin.ServeHTTP(w, r)
		return
	}
	requestID := newRequestID()
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	action, body, err := s.serve(r)
	code := ""
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = errInternal
		}
		code = ae.code
		writeError(w, requestID, ae)
	} else {
		writeResponse(w, r, action, requestID, body)
	}
	s.stats.record(action, code)
}

func (s *Sim) serve(r *http.Request) (action string, body response, err error) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return "(none)", nil, &apiError{status: http.StatusMethodNotAllowed, code: "UnsupportedHttpVerb",
			message: "The HTTP verb " + r.Method + " is not supported."}
	}
	if err := r.ParseForm(); err != nil {
		return "(none)", nil, clientError("MalformedQueryString", "The query string is malformed: %v", err)
	}
	p := params{v: r.Form}
	action = p.str("Action")
	spec, ok := actions[action]
	switch {
	case action == "":
		return "(none)", nil, errMissingAction
	case !ok:
		return "(unknown)", nil, clientError("InvalidAction", "The action %s is not valid for this web service.", action)
	}
	if key, shape := spec.bucketFor(action, p); !s.throttle.allow(key, shape) {
		return action, nil, errThrottled
	}
	fault := s.faults.draw(action)
	if fault.latency > 0 {
		t := time.NewTimer(fault.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return action, nil, errCanceled
		}
	}
	if fault.err != nil && !fault.afterApply {
		return action, nil, fault.err
	}
	if dry, _, err := p.boolean("DryRun"); err != nil {
		return action, nil, err
	} else if dry {
		return action, nil, errDryRun
	}
	body, err = s.apply(spec, call{p: p, now: s.opts.Clock()})
	if fault.err != nil {
		return action, nil, fault.err
	}
	return action, body, err
}

func (s *Sim) apply(spec actionSpec, c call) (response, error) {
	body, err := s.locked(spec.handle, c)
	if err == nil && spec.mutates && s.saver != nil {
		s.saver.changed()
	}
	return body, err
}

// locked runs a handler under the world's mutex, released even if the
// handler panics (net/http recovers the panic; a held mutex would hang
// every later call).
func (s *Sim) locked(h handler, c call) (response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return h(s.world, c)
}

// Snapshot copies the emulator's state: addresses, ENIs, instances,
// subnets and VPCs, sorted by id.
func (s *Sim) Snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.world.state()
}

// Stats returns the call counters.
func (s *Sim) Stats() Stats { return s.stats.snapshot() }

// ResetStats zeroes the call counters.
func (s *Sim) ResetStats() { s.stats.reset() }

// SetFaults replaces the fault configuration.
func (s *Sim) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.faults.set(f)
	return nil
}

// Faults returns the fault configuration.
func (s *Sim) Faults() Faults { return s.faults.get() }

// SetThrottle changes throttling; every bucket starts over, full.
func (s *Sim) SetThrottle(o ThrottleOptions) { s.throttle.set(o) }

// Throttle returns the throttling configuration.
func (s *Sim) Throttle() ThrottleOptions { return s.throttle.get() }

// Save writes the state file now; it is a no-op without one.
func (s *Sim) Save() error {
	if s.saver == nil {
		return nil
	}
	return s.saver.save()
}

// Close stops background saving and writes the final state.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() {
		if s.saver != nil {
			s.closeErr = s.saver.close()
		}
	})
	return s.closeErr
}
