package ec2sim

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// adminHandler serves the emulator's own endpoints:
//
//	GET    /_sim/healthz   200 "ok" once serving
//	GET    /_sim/stats     call counters per action and error code (JSON)
//	DELETE /_sim/stats     zero the counters
//	GET    /_sim/state     addresses, ENIs, instances, subnets, VPCs (JSON)
//	GET    /_sim/faults    fault injection settings (JSON)
//	POST   /_sim/faults    replace them, body as GET returns
//	DELETE /_sim/faults    clear them
//	GET    /_sim/throttle  throttling settings (JSON)
//	POST   /_sim/throttle  replace them: {"disabled":false,"scale":10}
func (s *Sim) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.Stats())
	})
	mux.HandleFunc("DELETE /_sim/stats", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/state", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.Snapshot())
	})
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.Faults())
	})
	mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if err := decodeJSON(w, r, &f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.SetFaults(f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, s.Faults())
	})
	mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		_ = s.SetFaults(Faults{})
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sim/throttle", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.Throttle())
	})
	mux.HandleFunc("POST /_sim/throttle", func(w http.ResponseWriter, r *http.Request) {
		var t ThrottleOptions
		if err := decodeJSON(w, r, &t); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.SetThrottle(t)
		writeJSON(w, s.Throttle())
	})
	return mux
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding request body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
