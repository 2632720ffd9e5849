package wait

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kube-eip/kube-eip/api"
)

// kubeletVolume writes a downward-API volume the way the kubelet's atomic
// writer does, so that Run meets the same directory layout and the same
// sequence of filesystem events as in a pod:
//
//	dir/..2026_11_21_10_00_00.123456789/labels   one directory per version
//	dir/..data -> ..2026_11_21_10_00_00.123456789
//	dir/labels -> ..data/labels
type kubeletVolume struct {
	t   testing.TB
	dir string
}

func newKubeletVolume(t testing.TB) *kubeletVolume {
	return &kubeletVolume{t: t, dir: filepath.Join(t.TempDir(), "podinfo")}
}

// file is the path a container opens.
func (v *kubeletVolume) file() string {
	return filepath.Join(v.dir, api.PodInfoLabelsFile)
}

// publish makes labels the volume's content, formatted as the kubelet does.
func (v *kubeletVolume) publish(labels map[string]string) {
	v.t.Helper()
	v.publishRaw(kubeletFormat(labels))
}

// publishRaw makes content the labels file's content: a new timestamped
// directory, a temporary symlink to it renamed over ..data (the atomic
// step), the visible symlink, then the previous directory removed.
func (v *kubeletVolume) publishRaw(content string) {
	v.t.Helper()
	if err := v.swap(content); err != nil {
		v.t.Fatalf("publishing the labels volume: %v", err)
	}
}

func (v *kubeletVolume) swap(content string) error {
	if err := os.MkdirAll(v.dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", v.dir, err)
	}
	dataLink := filepath.Join(v.dir, "..data")
	old, err := os.Readlink(dataLink)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading ..data: %w", err)
	}
	ts, err := os.MkdirTemp(v.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(ts, api.PodInfoLabelsFile), []byte(content), 0o644); err != nil {
		return fmt.Errorf("writing the labels: %w", err)
	}
	tmpLink := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return fmt.Errorf("linking ..data_tmp: %w", err)
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return fmt.Errorf("swapping ..data: %w", err)
	}
	visible := v.file()
	if _, err := os.Lstat(visible); errors.Is(err, fs.ErrNotExist) {
		if err := os.Symlink(filepath.Join("..data", api.PodInfoLabelsFile), visible); err != nil {
			return fmt.Errorf("linking the visible file: %w", err)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			return fmt.Errorf("removing the previous data directory: %w", err)
		}
	}
	return nil
}

// kubeletFormat renders labels as the kubelet's fieldpath.FormatMap does:
// sorted key="value" lines with Go-quoted values, no final newline.
func kubeletFormat(labels map[string]string) string {
	lines := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		lines = append(lines, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return strings.Join(lines, "\n")
}

func TestKubeletVolumeLayout(t *testing.T) {
	v := newKubeletVolume(t)
	v.publish(map[string]string{"app": "web"})
	first, err := os.Readlink(filepath.Join(v.dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	v.publish(map[string]string{"app": "web", api.LabelPublicIP: "3.4.5.6"})

	got, err := os.ReadFile(v.file())
	if err != nil {
		t.Fatal(err)
	}
	if want := "app=\"web\"\nkube-eip.io/public-ip=\"3.4.5.6\""; string(got) != want {
		t.Errorf("labels = %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(v.dir, first)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("previous data directory %s still there (err %v)", first, err)
	}
	if target, err := os.Readlink(v.file()); err != nil || target != "..data/labels" {
		t.Errorf("visible file links to %q (err %v), want ..data/labels", target, err)
	}
}
