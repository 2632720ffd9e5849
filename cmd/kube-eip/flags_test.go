package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
)

// --claim-ttl moved from the webhook to the binder: the binder takes it,
// and a webhook still given it (an upgrade keeping old extraArgs) starts
// and says where the setting went.
func TestClaimTTLMovedToTheBinder(t *testing.T) {
	var stderr bytes.Buffer
	if _, _, code := find("binder").parse([]string{"--claim-ttl=2m"}, &stderr); code != exitOK {
		t.Fatalf("the binder refused --claim-ttl (exit %d): %s", code, stderr.String())
	}

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	d := deprecatedFlag(fs, "claim-ttl", "set kube-eip binder --claim-ttl")
	var logged []string
	log := funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{})
	d.warn(log)
	if len(logged) != 0 {
		t.Errorf("warned of a flag not given: %q", logged)
	}
	if err := fs.Parse([]string{"--claim-ttl=2m"}); err != nil {
		t.Fatalf("the deprecated flag is refused: %v", err)
	}
	d.warn(log)
	if len(logged) != 1 || !strings.Contains(logged[0], "--claim-ttl is deprecated and ignored; set kube-eip binder --claim-ttl") || !strings.Contains(logged[0], `"value"="2m"`) {
		t.Errorf("logged %q, want one warning naming the flag, where it went and the value given", logged)
	}

	stderr.Reset()
	if _, _, code := find("webhook").parse([]string{"--claim-ttl=2m", "--wait-image=x"}, &stderr); code != exitOK {
		t.Fatalf("the webhook refused the deprecated --claim-ttl (exit %d): %s", code, stderr.String())
	}
}
