package ec2sim

import (
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

func TestInjectedErrors(t *testing.T) {
	srv, c, ctx := setup(t)
	noErr(t, srv.SetFaults(Faults{
		Default: FaultSpec{UnavailableRate: 1},
		Actions: map[string]FaultSpec{
			"AllocateAddress":   {InternalErrorRate: 1},
			"DescribeAddresses": {InternalErrorRate: 0.3},
			"DescribeSubnets":   {},
		},
	}))

	_, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	wantCode(t, err, "InternalError")
	if s := httpStatus(err); s != http.StatusInternalServerError {
		t.Errorf("InternalError with HTTP %d, want 500", s)
	}
	_, err = c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	wantCode(t, err, "Unavailable")
	if s := httpStatus(err); s != http.StatusServiceUnavailable {
		t.Errorf("Unavailable with HTTP %d, want 503", s)
	}
	_, err = c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	noErr(t, err) // listed with no faults: the default does not apply

	const calls = 400
	failed := 0
	for range calls {
		_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
		switch errorCode(err) {
		case "InternalError":
			failed++
		case "":
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if frac := float64(failed) / calls; frac < 0.22 || frac > 0.38 {
		t.Errorf("%.2f of calls failed, want about 0.3", frac)
	}
	if got := srv.Stats().Actions["DescribeAddresses"].Errors["InternalError"]; got != int64(failed) {
		t.Errorf("stats count %d InternalErrors, the client saw %d", got, failed)
	}
	if len(srv.Snapshot().Addresses) != 0 {
		t.Errorf("a failed AllocateAddress allocated")
	}
}

// AfterApply models EC2's ambiguous failure: the call took effect, the
// caller was told it failed.
func TestInjectedErrorAfterApply(t *testing.T) {
	srv, c, ctx := setup(t)
	noErr(t, srv.SetFaults(Faults{Actions: map[string]FaultSpec{"AllocateAddress": {InternalErrorRate: 1, AfterApply: true}}}))
	_, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	wantCode(t, err, "InternalError")
	if n := len(srv.Snapshot().Addresses); n != 1 {
		t.Errorf("%d addresses after an applied-then-failed allocation, want 1", n)
	}
}

func TestInjectedLatency(t *testing.T) {
	srv, c, ctx := setup(t)
	noErr(t, srv.SetFaults(Faults{Actions: map[string]FaultSpec{"DescribeVpcs": {Latency: 80 * time.Millisecond}}}))
	start := time.Now()
	_, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	noErr(t, err)
	if took := time.Since(start); took < 80*time.Millisecond {
		t.Errorf("DescribeVpcs took %v, want at least the 80ms added", took)
	}
}

// Faults can be changed while serving, over HTTP.
func TestFaultsOverHTTP(t *testing.T) {
	srv, c, ctx := setup(t)
	post := func(body string) int { return send(t, http.MethodPost, srv.URL+"/_sim/faults", body) }
	if s := post(`{"actions":{"DescribeVpcs":{"unavailableRate":1,"latency":"5ms"}}}`); s != http.StatusOK {
		t.Fatalf("POST /_sim/faults answered %d", s)
	}
	_, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	wantCode(t, err, "Unavailable")

	var got Faults
	getJSON(t, srv.URL+"/_sim/faults", &got)
	if spec := got.Actions["DescribeVpcs"]; spec.UnavailableRate != 1 || spec.Latency != 5*time.Millisecond {
		t.Errorf("GET /_sim/faults = %+v", got)
	}

	for _, bad := range []string{`{"actions":{"LaunchRocket":{}}}`, `{"default":{"internalErrorRate":1.5}}`, `{"default":{"latency":"soon"}}`, `not json`} {
		if s := post(bad); s != http.StatusBadRequest {
			t.Errorf("POST %s answered %d, want 400", bad, s)
		}
	}

	if s := send(t, http.MethodDelete, srv.URL+"/_sim/faults", ""); s != http.StatusNoContent {
		t.Errorf("DELETE /_sim/faults answered %d", s)
	}
	_, err = c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	noErr(t, err)
}

// The flag form of faults is the same JSON.
func TestFaultsFlagValue(t *testing.T) {
	var f Faults
	noErr(t, f.Set(`{"default":{"internalErrorRate":0.05},"actions":{"AssociateAddress":{"latency":"50ms","afterApply":true}}}`))
	if f.Default.InternalErrorRate != 0.05 || f.Actions["AssociateAddress"].Latency != 50*time.Millisecond || !f.Actions["AssociateAddress"].AfterApply {
		t.Errorf("parsed %+v", f)
	}
	if err := f.Set(`{"actions":{"Nope":{}}}`); err == nil {
		t.Errorf("unknown action accepted")
	}
}
