package ec2sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// stateFileFormat versions the state file so a later layout can be refused
// cleanly instead of misread.
const stateFileFormat = 1

type stateFile struct {
	Format  int       `json:"format"`
	SavedAt time.Time `json:"savedAt"`
	State   State     `json:"state"`
}

// readStateFile loads a state file; a missing file is no error (first start).
func readStateFile(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state file: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parsing state file %s: %w", path, err)
	}
	if f.Format != stateFileFormat {
		return nil, fmt.Errorf("state file %s has format %d, want %d", path, f.Format, stateFileFormat)
	}
	return &f.State, nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old file or the new one, never a torn mix.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("creating temporary state file: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing temporary state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("syncing temporary state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing temporary state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing state file: %w", err)
	}
	return nil
}

// saver writes the state file a short delay after changes, so a burst of
// calls costs one write, and once more when the Sim closes.
type saver struct {
	path     string
	delay    time.Duration
	snapshot func() State
	now      func() time.Time
	logf     func(string, ...any)

	writeMu sync.Mutex
	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}
}

func newSaver(path string, delay time.Duration, snapshot func() State, now func() time.Time, logf func(string, ...any)) *saver {
	sv := &saver{
		path: path, delay: delay, snapshot: snapshot, now: now, logf: logf,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go sv.loop()
	return sv
}

// changed asks for a write soon; it never blocks the caller.
func (sv *saver) changed() {
	select {
	case sv.kick <- struct{}{}:
	default:
	}
}

func (sv *saver) loop() {
	defer close(sv.stopped)
	for {
		select {
		case <-sv.done:
			return
		case <-sv.kick:
		}
		t := time.NewTimer(sv.delay)
		select {
		case <-sv.done:
			t.Stop()
			return
		case <-t.C:
		}
		if err := sv.save(); err != nil {
			sv.logf("ec2sim: %v", err)
		}
	}
}

func (sv *saver) save() error {
	sv.writeMu.Lock()
	defer sv.writeMu.Unlock()
	b, err := json.MarshalIndent(stateFile{Format: stateFileFormat, SavedAt: sv.now().UTC(), State: sv.snapshot()}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	if err := writeFileAtomic(sv.path, append(b, '\n')); err != nil {
		return fmt.Errorf("saving state to %s: %w", sv.path, err)
	}
	return nil
}

// close stops the loop and writes the final state.
func (sv *saver) close() error {
	close(sv.done)
	<-sv.stopped
	return sv.save()
}

// state copies the world out, sorted by id so files and dumps diff well.
func (w *world) state() State {
	var st State
	for _, id := range sortedKeys(w.vpcs) {
		st.Vpcs = append(st.Vpcs, w.vpcs[id].clone())
	}
	for _, id := range sortedKeys(w.subnets) {
		st.Subnets = append(st.Subnets, w.subnets[id].clone())
	}
	for _, id := range sortedKeys(w.addresses) {
		st.Addresses = append(st.Addresses, w.addresses[id].clone())
	}
	for _, id := range sortedKeys(w.enis) {
		st.NetworkInterfaces = append(st.NetworkInterfaces, w.enis[id].clone())
	}
	for _, id := range sortedKeys(w.instances) {
		st.Instances = append(st.Instances, w.instances[id].clone())
	}
	return st
}

// load fills an empty world from a saved state, rebuilding the indexes and
// refusing a state that breaks EC2's invariants rather than serving it.
func (w *world) load(st State) error {
	for _, v := range st.Vpcs {
		v := v.clone()
		w.vpcs[v.ID], w.taken[v.ID], w.taken[v.DHCPOptionsID] = &v, true, true
	}
	for _, s := range st.Subnets {
		s := s.clone()
		p, err := netip.ParsePrefix(s.CIDR)
		if err != nil {
			return fmt.Errorf("subnet %s: parsing CIDR: %w", s.ID, err)
		}
		if w.vpcs[s.VpcID] == nil {
			return fmt.Errorf("subnet %s: unknown VPC %s", s.ID, s.VpcID)
		}
		w.subnets[s.ID], w.taken[s.ID] = &s, true
		w.spaces[s.ID] = newSubnetSpace(s.ID, p)
	}
	for _, i := range st.Instances {
		i := i.clone()
		w.instances[i.ID], w.taken[i.ID], w.taken[i.ReservationID] = &i, true, true
	}
	for _, n := range st.NetworkInterfaces {
		if err := w.loadENI(n.clone()); err != nil {
			return err
		}
	}
	for _, inst := range w.instances {
		for _, id := range inst.NetworkInterfaceIDs {
			if eni := w.enis[id]; eni == nil || eni.Attachment == nil || eni.Attachment.InstanceID != inst.ID {
				return fmt.Errorf("instance %s lists %s, which is not attached to it", inst.ID, id)
			}
		}
	}
	for _, a := range st.Addresses {
		if err := w.loadAddress(a.clone()); err != nil {
			return err
		}
	}
	return nil
}

func (w *world) loadENI(n NetworkInterface) error {
	if w.subnets[n.SubnetID] == nil || len(n.PrivateIPs) == 0 {
		return fmt.Errorf("network interface %s: unknown subnet %q or no primary address", n.ID, n.SubnetID)
	}
	for _, ip := range n.PrivateIPs {
		if err := w.setOwner(ip, n.ID); err != nil {
			return err
		}
	}
	for _, p := range n.Prefixes {
		if pfx, err := netip.ParsePrefix(p); err != nil || pfx.Bits() != prefixBits {
			return fmt.Errorf("network interface %s: %q is not a /%d prefix", n.ID, p, prefixBits)
		}
		for _, ip := range prefixAddrs(p) {
			if err := w.setOwner(ip, n.ID); err != nil {
				return err
			}
		}
	}
	if att := n.Attachment; att != nil {
		inst := w.instances[att.InstanceID]
		if inst == nil || !slices.Contains(inst.NetworkInterfaceIDs, n.ID) {
			return fmt.Errorf("network interface %s: attached to %s, which does not list it", n.ID, att.InstanceID)
		}
		w.byAttachment[att.ID], w.taken[att.ID] = &n, true
	}
	w.enis[n.ID], w.taken[n.ID] = &n, true
	return nil
}

func (w *world) loadAddress(a Address) error {
	if w.byPublicIP[a.PublicIP] != nil {
		return fmt.Errorf("address %s: public IP %s allocated twice", a.AllocationID, a.PublicIP)
	}
	if a.AssociationID != "" {
		eni := w.enis[a.NetworkInterfaceID]
		if eni == nil || !holdsIP(eni, a.PrivateIPAddress) {
			return fmt.Errorf("address %s: associated with %s on %s, which does not hold it", a.AllocationID, a.PrivateIPAddress, a.NetworkInterfaceID)
		}
		key := eniIP{a.NetworkInterfaceID, a.PrivateIPAddress}
		if w.byPrivateIP[key] != nil {
			return fmt.Errorf("address %s: %s on %s already has an address", a.AllocationID, a.PrivateIPAddress, a.NetworkInterfaceID)
		}
		w.byPrivateIP[key], w.byAssociation[a.AssociationID], w.taken[a.AssociationID] = &a, &a, true
	}
	w.addresses[a.AllocationID], w.byPublicIP[a.PublicIP], w.taken[a.AllocationID] = &a, &a, true
	return nil
}
