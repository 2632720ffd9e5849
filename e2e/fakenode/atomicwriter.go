package fakenode

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// atomicWriter publishes a set of files into dir with the kubelet's layout
// for projected volumes, so that a reader never sees half an update:
//
//	dir/..2026_01_02_15_04_05.123456789/labels   the data, one dir per version
//	dir/..data -> ..2026_01_02_15_04_05.123456789
//	dir/labels -> ..data/labels                  what users open
//
// An update writes a new timestamped directory, points a temporary symlink
// at it and renames that over ..data (rename is atomic), then removes the
// old directory.
type atomicWriter struct {
	dir string
}

// fileData is one file of a payload.
type fileData struct {
	data []byte
	mode os.FileMode
}

const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// write makes dir hold exactly payload (paths relative to dir). An
// unchanged payload touches nothing.
func (w atomicWriter) write(payload map[string]fileData) error {
	for p := range payload {
		if err := validatePayloadPath(p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", w.dir, err)
	}
	dataLink := filepath.Join(w.dir, dataDirName)
	oldTS, err := os.Readlink(dataLink)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", dataLink, err)
	}
	if oldTS != "" {
		same, err := sameFiles(filepath.Join(w.dir, oldTS), payload)
		if err != nil {
			return err
		}
		if same {
			return w.linkUserFiles(payload)
		}
	}

	tsDir, err := os.MkdirTemp(w.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("creating a data directory in %s: %w", w.dir, err)
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return fmt.Errorf("opening up %s: %w", tsDir, err)
	}
	if err := writeFiles(tsDir, payload); err != nil {
		_ = os.RemoveAll(tsDir)
		return err
	}
	tmpLink := filepath.Join(w.dir, newDataDirName)
	if err := os.Remove(tmpLink); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale %s: %w", tmpLink, err)
	}
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return fmt.Errorf("linking %s: %w", tmpLink, err)
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return fmt.Errorf("swapping %s: %w", dataLink, err)
	}
	if err := w.linkUserFiles(payload); err != nil {
		return err
	}
	if err := w.unlinkStaleUserFiles(payload); err != nil {
		return err
	}
	if oldTS != "" {
		if err := os.RemoveAll(filepath.Join(w.dir, oldTS)); err != nil {
			return fmt.Errorf("removing the previous data directory: %w", err)
		}
	}
	return nil
}

// validatePayloadPath refuses paths that could leave dir or collide with
// the writer's own entries, as the kubelet does.
func validatePayloadPath(p string) error {
	if p == "" || filepath.IsAbs(p) {
		return fmt.Errorf("invalid volume file path %q: must be relative and not empty", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || strings.HasPrefix(part, "..") {
			return fmt.Errorf("invalid volume file path %q", p)
		}
	}
	return nil
}

// topLevel is the first element of a payload path, the one that gets a
// user-visible symlink (a nested file is reached through its top directory).
func topLevel(p string) string {
	first, _, _ := strings.Cut(p, "/")
	return first
}

// sameFiles tells whether dir holds exactly payload. It reads through an
// os.Root, so nothing in dir can lead the comparison outside it.
func sameFiles(dir string, payload map[string]fileData) (bool, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", dir, err)
	}
	defer func() { _ = root.Close() }()
	seen, differs := 0, false
	err = fs.WalkDir(root.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want, ok := payload[path]
		if !ok {
			differs = true
			return fs.SkipAll
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		got, err := root.ReadFile(path)
		if err != nil {
			return err
		}
		if info.Mode().Perm() != want.mode.Perm() || !bytes.Equal(got, want.data) {
			differs = true
			return fs.SkipAll
		}
		seen++
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("comparing %s: %w", dir, err)
	}
	return !differs && seen == len(payload), nil
}

func writeFiles(dir string, payload map[string]fileData) error {
	for p, f := range payload {
		path := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating the directory of %s: %w", p, err)
		}
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		// WriteFile's mode passes through the umask; the payload's must not.
		if err := os.Chmod(path, f.mode); err != nil {
			return fmt.Errorf("setting the mode of %s: %w", p, err)
		}
	}
	return nil
}

func (w atomicWriter) linkUserFiles(payload map[string]fileData) error {
	for p := range payload {
		top := topLevel(p)
		link := filepath.Join(w.dir, top)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataDirName, top), link); err != nil {
			return fmt.Errorf("linking %s: %w", top, err)
		}
	}
	return nil
}

// unlinkStaleUserFiles removes the symlinks of files the payload dropped.
func (w atomicWriter) unlinkStaleUserFiles(payload map[string]fileData) error {
	keep := map[string]bool{}
	for p := range payload {
		keep[topLevel(p)] = true
	}
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", w.dir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") || keep[e.Name()] || e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if err := os.Remove(filepath.Join(w.dir, e.Name())); err != nil {
			return fmt.Errorf("removing %s: %w", e.Name(), err)
		}
	}
	return nil
}
