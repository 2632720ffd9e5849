package ec2sim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	noErr(t, err)
	resp, err := http.DefaultClient.Do(req)
	noErr(t, err)
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	noErr(t, json.NewDecoder(resp.Body).Decode(v))
}

func send(t *testing.T, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	noErr(t, err)
	resp, err := http.DefaultClient.Do(req)
	noErr(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestStatsAndStateOverHTTP(t *testing.T) {
	srv, c, ctx := setup(t)
	inst := launch(t, ctx, c, "us-east-1a")
	alloc := allocate(t, ctx, c)
	_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: alloc.AllocationId, InstanceId: inst.InstanceId})
	noErr(t, err)
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: alloc.AllocationId})
	wantCode(t, err, "InvalidIPAddress.InUse")

	var stats Stats
	getJSON(t, srv.URL+"/_sim/stats", &stats)
	if stats.Calls != 4 || stats.Actions["AllocateAddress"].Calls != 1 || stats.Actions["RunInstances"].Calls != 1 ||
		stats.Actions["ReleaseAddress"].Errors["InvalidIPAddress.InUse"] != 1 || stats.Errors["InvalidIPAddress.InUse"] != 1 {
		t.Errorf("stats %+v", stats)
	}

	var st State
	getJSON(t, srv.URL+"/_sim/state", &st)
	if len(st.Addresses) != 1 || st.Addresses[0].NetworkInterfaceID != aws.ToString(inst.NetworkInterfaces[0].NetworkInterfaceId) ||
		len(st.Instances) != 1 || len(st.NetworkInterfaces) != 1 || len(st.Subnets) != 3 || len(st.Vpcs) != 1 {
		t.Errorf("state %+v", st)
	}

	if s := send(t, http.MethodDelete, srv.URL+"/_sim/stats", ""); s != http.StatusNoContent {
		t.Errorf("DELETE /_sim/stats answered %d", s)
	}
	var reset Stats
	getJSON(t, srv.URL+"/_sim/stats", &reset)
	if reset.Calls != 0 || len(reset.Actions) != 0 || len(reset.Errors) != 0 {
		t.Errorf("stats after reset %+v", reset)
	}

	if s := send(t, http.MethodPost, srv.URL+"/_sim/throttle", `{"disabled":false,"scale":2}`); s != http.StatusOK {
		t.Errorf("POST /_sim/throttle answered %d", s)
	}
	if got := srv.Throttle(); got.Disabled || got.Scale != 2 {
		t.Errorf("throttle %+v", got)
	}
	if s := send(t, http.MethodPost, srv.URL+"/_sim/throttle", `{"enabled":true}`); s != http.StatusBadRequest {
		t.Errorf("unknown throttle field answered %d, want 400", s)
	}
	if s := send(t, http.MethodGet, srv.URL+"/_sim/healthz", ""); s != http.StatusOK {
		t.Errorf("healthz answered %d", s)
	}
}

// The emulator checks no credentials, so it refuses to listen beyond loopback.
func TestListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if srv, err := Start(Options{Listen: addr}); err == nil {
			_ = srv.Close()
			t.Errorf("Start accepted %s", addr)
		}
	}
	srv := startSim(t, Options{Listen: "127.0.0.1:0"})
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Errorf("URL %s", srv.URL)
	}
}
