package wait

import (
	"cmp"
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kube-eip/kube-eip/api"
)

// waiting is what Run logs once it has read the file and armed its watch.
const waiting = "waiting for the Elastic IP label"

var announcement = regexp.MustCompile(`^kube-eip: public IP 3\.4\.5\.6 attached \(waited [0-9.]+[µnm]?s\)\n$`)

func TestLabelAlreadyPresent(t *testing.T) {
	v := newKubeletVolume(t)
	v.publish(map[string]string{"app": "web", api.LabelPublicIP: "3.4.5.6"})
	r := start(t, Options{LabelsFile: v.file(), PollInterval: time.Hour})
	if err := r.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !announcement.MatchString(r.out.String()) {
		t.Errorf("output %q does not match %s", r.out, announcement)
	}
	if n, _ := r.log.count(waiting); n != 0 {
		t.Errorf("Run logged %q although the label was there; log:\n%s", waiting, r.log)
	}
}

// TestLabelAppearsAfterSwap polls once an hour, so only the watch on the
// directory can notice the kubelet's ..data swap in time.
func TestLabelAppearsAfterSwap(t *testing.T) {
	v := newKubeletVolume(t)
	v.publish(map[string]string{"app": "web"})
	r := start(t, Options{LabelsFile: v.file(), PollInterval: time.Hour})
	r.log.waitFor(t, waiting)

	v.publish(map[string]string{"app": "web", "tier": "edge"})
	v.publish(map[string]string{"app": "web", "tier": "edge", api.LabelPublicIP: "3.4.5.6"})
	if err := r.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !announcement.MatchString(r.out.String()) {
		t.Errorf("output %q does not match %s", r.out, announcement)
	}
}

// TestPollFallback starts before the volume exists, so there is no
// directory to watch at first: the poll finds the file, and the watch is
// added once the directory appears.
func TestPollFallback(t *testing.T) {
	v := newKubeletVolume(t)
	r := start(t, Options{LabelsFile: v.file(), PollInterval: 10 * time.Millisecond})
	r.log.waitFor(t, waiting)
	v.publish(map[string]string{"app": "web"})
	r.log.waitFor(t, "watching the labels directory")
	v.publish(map[string]string{api.LabelPublicIP: "3.4.5.6"})
	if err := r.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !announcement.MatchString(r.out.String()) {
		t.Errorf("output %q does not match %s", r.out, announcement)
	}
}

func TestInvalidAddressIgnored(t *testing.T) {
	for _, tc := range []struct{ value, logged string }{
		{"", "label present with an empty value"},
		{"pending", `value \"pending\" is not an IPv4 address`},
		{"2001:db8::1", "is not an IPv4 address"},
		{"::ffff:3.4.5.6", "is not an IPv4 address"},
		{"3.4.5", "is not an IPv4 address"},
		{"03.4.5.6", "is not an IPv4 address"},
		{"3.4.5.6 ", "is not an IPv4 address"},
		{"300.4.5.6", "is not an IPv4 address"},
	} {
		t.Run(cmp.Or(tc.value, "empty"), func(t *testing.T) {
			t.Parallel()
			v := newKubeletVolume(t)
			v.publish(map[string]string{"app": "web"})
			r := start(t, Options{LabelsFile: v.file(), PollInterval: time.Hour})
			r.log.waitFor(t, waiting)

			v.publish(map[string]string{"app": "web", api.LabelPublicIP: tc.value})
			r.log.waitFor(t, tc.logged)
			r.assertWaiting(t)

			v.publish(map[string]string{"app": "web", api.LabelPublicIP: "3.4.5.6"})
			if err := r.result(t); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !announcement.MatchString(r.out.String()) {
				t.Errorf("output %q does not match %s", r.out, announcement)
			}
		})
	}
}

func TestOtherLabelKey(t *testing.T) {
	v := newKubeletVolume(t)
	v.publish(map[string]string{api.LabelPublicIP: "9.9.9.9", "example.com/ip": "3.4.5.6"})
	r := start(t, Options{LabelsFile: v.file(), Label: "example.com/ip"})
	if err := r.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !announcement.MatchString(r.out.String()) {
		t.Errorf("output %q does not match %s", r.out, announcement)
	}
}

func TestTimeout(t *testing.T) {
	v := newKubeletVolume(t)
	v.publish(map[string]string{"app": "web", api.LabelPublicIP: "pending"})
	began := time.Now()
	r := start(t, Options{LabelsFile: v.file(), Timeout: 300 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	err := r.result(t)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Run = %v, want ErrTimeout", err)
	}
	if waited := time.Since(began); waited < 300*time.Millisecond {
		t.Errorf("gave up after %s, before the 300ms timeout", waited)
	}
	msg := err.Error()
	for _, want := range []string{
		"timed out after 3", // 300ms, or a little more on a busy machine
		"label kube-eip.io/public-ip",
		"IPv4 address in " + v.file(),
		`last read: value "pending" is not an IPv4 address`,
		"kubectl describe pod",
		"kube-eip binder's logs",
		"kube-eip.io/ annotations",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if r.out.Len() != 0 {
		t.Errorf("output %q, want none", r.out)
	}
}

func TestCanceled(t *testing.T) {
	v := newKubeletVolume(t)
	v.publish(map[string]string{"app": "web"})
	r := start(t, Options{LabelsFile: v.file(), Timeout: time.Hour, PollInterval: time.Hour})
	r.log.waitFor(t, waiting)
	r.cancel()
	err := r.result(t)
	if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want ErrCanceled wrapping context.Canceled", err)
	}
	if errors.Is(err, ErrTimeout) {
		t.Errorf("a canceled wait reports a timeout: %v", err)
	}
}

func TestProgressLogged(t *testing.T) {
	v := newKubeletVolume(t)
	v.publish(map[string]string{"app": "web"})
	r := start(t, Options{LabelsFile: v.file(), PollInterval: time.Hour, ProgressInterval: 20 * time.Millisecond})
	r.log.waitFor(t, `"msg"="still waiting for kube-eip.io/public-ip"`)
	r.log.waitFor(t, `"found"="label not present"`)
	r.assertWaiting(t)
}

func TestMalformedLinesIgnored(t *testing.T) {
	v := newKubeletVolume(t)
	v.publishRaw("app=web\n" + // unquoted: malformed
		"=\"orphan\"\n" + // no key: malformed
		`kube-eip.io/public-ip="3.4.5.6"` + "\n" +
		`tier="edge`) // unterminated: malformed
	r := start(t, Options{LabelsFile: v.file(), PollInterval: time.Hour})
	if err := r.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !announcement.MatchString(r.out.String()) {
		t.Errorf("output %q does not match %s", r.out, announcement)
	}
	if n, _ := r.log.count("ignoring a malformed line"); n != 3 {
		t.Errorf("logged %d malformed lines, want 3; log:\n%s", n, r.log)
	}
}

func TestMalformedLabelLineDoesNotCount(t *testing.T) {
	v := newKubeletVolume(t)
	v.publishRaw(`kube-eip.io/public-ip=3.4.5.6`)
	r := start(t, Options{LabelsFile: v.file(), PollInterval: time.Hour})
	r.log.waitFor(t, "ignoring a malformed line")
	r.log.waitFor(t, waiting)
	r.assertWaiting(t)
	v.publish(map[string]string{api.LabelPublicIP: "3.4.5.6"})
	if err := r.result(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestOptionsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "labels")
	for name, opts := range map[string]Options{
		"negative timeout":  {LabelsFile: file, Timeout: -time.Second},
		"negative poll":     {LabelsFile: file, PollInterval: -time.Second},
		"negative progress": {LabelsFile: file, ProgressInterval: -time.Second},
		"label with =":      {LabelsFile: file, Label: "a=b"},
		"label with space":  {LabelsFile: file, Label: "a b"},
	} {
		t.Run(name, func(t *testing.T) {
			err := Run(t.Context(), opts)
			if err == nil || errors.Is(err, ErrTimeout) || errors.Is(err, ErrCanceled) {
				t.Fatalf("Run = %v, want an options error", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	o, err := Options{}.complete()
	if err != nil {
		t.Fatal(err)
	}
	if o.LabelsFile != "/etc/kube-eip/podinfo/labels" || o.Label != api.LabelPublicIP ||
		o.Timeout != 10*time.Minute || o.PollInterval != 250*time.Millisecond ||
		o.ProgressInterval != 30*time.Second || o.Out == nil {
		t.Errorf("defaults = %+v", o)
	}
}
