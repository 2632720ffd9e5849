package wait

import (
	"errors"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
)

// dirWatch reports changes in the directory of the labels file.
//
// It watches the directory, not the file: the kubelet never writes the
// visible file, which is a symlink to ..data/labels. It publishes a new
// version by creating a timestamped directory and renaming a fresh symlink
// over ..data, so a watch on the file (or on what it resolves to) sees
// nothing, or dies with the old directory. Every entry that changes in the
// directory is a reason to re-read; what changed does not matter.
//
// Watching is best effort: the poll in Run is the safety net, for a
// watcher that could not be created (inotify instances are a per-user
// limit, often low on busy nodes) or a directory that does not exist yet.
type dirWatch struct {
	dir   string
	log   logr.Logger
	w     *fsnotify.Watcher
	added bool
	// failing keeps a directory that stays missing from logging each poll.
	failing bool
}

func newDirWatch(file string, log logr.Logger) *dirWatch {
	d := &dirWatch{dir: filepath.Dir(file), log: log}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Info("cannot watch for changes, polling only", "error", err.Error())
		return d
	}
	d.w = w
	d.ensure()
	return d
}

// ensure (re)starts watching the directory if it is not watched yet; it is
// cheap to call on every poll.
func (d *dirWatch) ensure() {
	if d.w == nil || d.added {
		return
	}
	if err := d.w.Add(d.dir); err != nil {
		if !d.failing {
			d.log.V(1).Info("cannot watch the labels directory yet, polling", "dir", d.dir, "error", err.Error())
		}
		d.failing = true
		return
	}
	d.added, d.failing = true, false
	d.log.V(1).Info("watching the labels directory", "dir", d.dir)
}

// events delivers the changes; nil (never ready) without a watcher.
func (d *dirWatch) events() <-chan fsnotify.Event {
	if d.w == nil {
		return nil
	}
	return d.w.Events
}

// errors delivers the watcher's errors; nil (never ready) without one.
func (d *dirWatch) errors() <-chan error {
	if d.w == nil {
		return nil
	}
	return d.w.Errors
}

// handle notes an event that ends the watch itself: the inotify watch of a
// removed or moved directory is gone, and ensure must add it again. A
// closed channel means the watcher died; polling carries on alone.
func (d *dirWatch) handle(ev fsnotify.Event, open bool) {
	if !open {
		d.stopped()
		return
	}
	if filepath.Clean(ev.Name) == d.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		d.added = false
		_ = d.w.Remove(d.dir) // may already be gone with the directory
	}
}

// handleError logs a watcher error; an overflow means events were lost,
// which the re-read that follows makes up for.
func (d *dirWatch) handleError(err error, open bool) {
	if !open {
		d.stopped()
		return
	}
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		d.log.V(1).Info("filesystem events overflowed, re-reading")
		return
	}
	d.log.Info("watching the labels directory failed, re-reading", "error", err.Error())
}

func (d *dirWatch) stopped() {
	d.log.Info("the filesystem watcher stopped, polling only")
	d.close()
	d.w = nil
}

func (d *dirWatch) close() {
	if d.w != nil {
		_ = d.w.Close() // nothing to do about a failed close on the way out
	}
}
