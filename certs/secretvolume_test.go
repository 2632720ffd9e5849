package certs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// secretVolume lays out files the way the kubelet projects a Secret volume:
// each name is a symlink into ..data, and ..data is a symlink to a timestamped
// directory that is replaced whole by an atomic rename, after which the old
// directory is deleted (k8s.io/kubernetes/pkg/volume/util AtomicWriter).
type secretVolume struct {
	dir  string
	gen  int
	prev string
}

func newSecretVolume(t *testing.T) *secretVolume {
	t.Helper()
	return &secretVolume{dir: t.TempDir()}
}

func (v *secretVolume) path(name string) string { return filepath.Join(v.dir, name) }

// write publishes a new generation of files in one atomic step.
func (v *secretVolume) write(t *testing.T, files map[string][]byte) {
	t.Helper()
	v.gen++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%09d", v.gen%60, v.gen)
	if err := os.Mkdir(v.path(ts), 0o755); err != nil {
		t.Fatalf("creating %s: %v", ts, err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(v.path(ts), name), data, 0o644); err != nil {
			t.Fatalf("writing %s: %v", name, err)
		}
	}
	if err := os.Symlink(ts, v.path("..data_tmp")); err != nil {
		t.Fatalf("linking ..data_tmp: %v", err)
	}
	if err := os.Rename(v.path("..data_tmp"), v.path("..data")); err != nil {
		t.Fatalf("swapping ..data: %v", err)
	}
	for name := range files {
		if _, err := os.Lstat(v.path(name)); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), v.path(name)); err != nil {
				t.Fatalf("linking %s: %v", name, err)
			}
		}
	}
	if v.prev != "" {
		if err := os.RemoveAll(v.path(v.prev)); err != nil {
			t.Fatalf("removing %s: %v", v.prev, err)
		}
	}
	v.prev = ts
}

// writeTLS publishes a kubernetes.io/tls pair.
func (v *secretVolume) writeTLS(t *testing.T, certPEM, keyPEM []byte) {
	t.Helper()
	v.write(t, map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": nil})
}
