package fakenode

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readThroughLink(t *testing.T, dir, name string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("%s is not a symlink: %v", name, err)
	}
	if target != filepath.Join(dataDirName, name) {
		t.Errorf("%s -> %s, want %s", name, target, filepath.Join(dataDirName, name))
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return string(data)
}

func dataDir(t *testing.T, dir string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil {
		t.Fatalf("reading ..data: %v", err)
	}
	if !strings.HasPrefix(target, "..20") || strings.Contains(target, "/") {
		t.Errorf("..data -> %q, want a timestamped directory beside it", target)
	}
	return target
}

func TestAtomicWriterPublishesAndSwapsVersions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "podinfo")
	w := atomicWriter{dir: dir}

	if err := w.write(map[string]fileData{
		"labels":      {data: []byte(`app="web"`), mode: 0o644},
		"annotations": {data: []byte(`a="1"`), mode: 0o600},
	}); err != nil {
		t.Fatalf("first write: %v", err)
	}
	first := dataDir(t, dir)
	if got := readThroughLink(t, dir, "labels"); got != `app="web"` {
		t.Errorf("labels = %q", got)
	}
	if info, err := os.Stat(filepath.Join(dir, "annotations")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("annotations mode: %v, %v", info, err)
	}

	// The same payload again changes nothing.
	if err := w.write(map[string]fileData{
		"labels":      {data: []byte(`app="web"`), mode: 0o644},
		"annotations": {data: []byte(`a="1"`), mode: 0o600},
	}); err != nil {
		t.Fatalf("unchanged write: %v", err)
	}
	if again := dataDir(t, dir); again != first {
		t.Errorf("an unchanged payload swapped ..data from %s to %s", first, again)
	}

	// An update swaps ..data to a new directory, drops the old one and the
	// links of files that left the payload.
	if err := w.write(map[string]fileData{
		"labels":  {data: []byte("app=\"web\"\nkube-eip.io/public-ip=\"203.0.113.10\""), mode: 0o644},
		"name/of": {data: []byte("web-0"), mode: 0o644},
	}); err != nil {
		t.Fatalf("update: %v", err)
	}
	second := dataDir(t, dir)
	if second == first {
		t.Fatalf("..data still points at %s after an update", first)
	}
	if got := readThroughLink(t, dir, "labels"); !strings.Contains(got, `kube-eip.io/public-ip="203.0.113.10"`) {
		t.Errorf("labels after update = %q", got)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "name", "of")); err != nil || string(data) != "web-0" {
		t.Errorf("nested file: %q, %v", data, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Errorf("old data directory %s still there: %v", first, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "annotations")); !os.IsNotExist(err) {
		t.Errorf("link of a dropped file still there: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, newDataDirName)); !os.IsNotExist(err) {
		t.Errorf("temporary link left behind: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 { // ..data, the data dir, labels, name
		t.Errorf("directory holds %v", names)
	}
}

func TestAtomicWriterRefusesEscapingPaths(t *testing.T) {
	w := atomicWriter{dir: t.TempDir()}
	for _, p := range []string{"", "/etc/passwd", "../x", "a/../../x", "..data", "a//b"} {
		if err := w.write(map[string]fileData{p: {data: []byte("x"), mode: 0o644}}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}
