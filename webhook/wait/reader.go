package wait

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"

	"github.com/go-logr/logr"
)

// labelsReader re-reads the labels file and remembers what it saw, so that
// the many reads of an idle wait (every poll, every unrelated event) log
// only what changed.
type labelsReader struct {
	file, label string
	log         logr.Logger

	read bool   // whether data holds a parsed read
	data []byte // the file's content at the last read
	addr netip.Addr
	// seen says in words what the last read found; it ends up in the
	// progress lines and the timeout error, where it is the first clue.
	seen string
}

// address reads the file and returns the label's address once it is a
// valid IPv4 address.
func (r *labelsReader) address() (netip.Addr, bool) {
	data, err := os.ReadFile(r.file)
	if err != nil {
		r.read = false
		// Missing is normal for an instant while the kubelet swaps ..data
		// (the old directory goes away); anything else deserves a line.
		if errors.Is(err, fs.ErrNotExist) {
			r.note(false, "labels file not found")
		} else {
			r.note(true, fmt.Sprintf("labels file unreadable: %v", err))
		}
		return netip.Addr{}, false
	}
	if r.read && bytes.Equal(data, r.data) {
		return r.addr, r.addr.IsValid()
	}
	r.read, r.data, r.addr = true, data, netip.Addr{}

	labels, malformed := ParseLabels(data)
	for _, err := range malformed {
		r.log.Info("ignoring a malformed line of the labels file", "error", err.Error())
	}
	value, ok := labels[r.label]
	switch {
	case !ok:
		r.note(false, "label not present")
	case value == "":
		r.note(true, "label present with an empty value")
	default:
		addr, err := netip.ParseAddr(value)
		if err != nil || !addr.Is4() {
			r.note(true, fmt.Sprintf("value %q is not an IPv4 address", value))
			break
		}
		r.addr = addr
		r.seen = "label set to " + addr.String()
	}
	return r.addr, r.addr.IsValid()
}

// note records what a read found and logs it when it differs from the last
// read; unexpected findings at info, the expected ones at verbosity 1.
func (r *labelsReader) note(unexpected bool, seen string) {
	if seen == r.seen {
		return
	}
	r.seen = seen
	log := r.log.V(1)
	if unexpected {
		log = r.log
	}
	log.Info("labels file read", "found", seen)
}
