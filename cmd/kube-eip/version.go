package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
)

// Version is the release, stamped at build time with
// -ldflags "-X main.Version=v0.1.0".
var Version = "dev"

func versionFlags(*flag.FlagSet) runFunc {
	return func(_ context.Context, stdout io.Writer) error {
		if _, err := fmt.Fprintf(stdout, "kube-eip %s (%s %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH); err != nil {
			return fmt.Errorf("printing the version: %w", err)
		}
		return nil
	}
}
