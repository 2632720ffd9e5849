package ec2sim

import (
	"maps"
	"slices"
	"strconv"
	"time"
)

// terminatedRetention is how long EC2 keeps describing terminated instances.
const terminatedRetention = time.Hour

type runInstancesResponse struct {
	respMeta
	xmlReservation
}

func (w *world) runInstances(c call) (response, error) {
	w.pruneTerminated(c.now)
	imageID := c.p.str("ImageId")
	if imageID == "" {
		return nil, missingParameter("ImageId")
	}
	minCount, minSet, err := c.p.integer("MinCount")
	if err != nil {
		return nil, err
	}
	maxCount, maxSet, err := c.p.integer("MaxCount")
	if err != nil {
		return nil, err
	}
	switch {
	case !minSet:
		return nil, missingParameter("MinCount")
	case !maxSet:
		return nil, missingParameter("MaxCount")
	case minCount < 1:
		return nil, invalidValue("Value (%d) for parameter minCount is invalid. Expected a positive integer.", minCount)
	case maxCount < minCount:
		return nil, invalidValue("Value (%d) for parameter maxCount is invalid. Expected a value of at least minCount (%d).", maxCount, minCount)
	}
	token := c.p.str("ClientToken")
	if resID := w.clientTokens["run/"+token]; token != "" && resID != "" {
		return w.reservationResponse(resID), nil
	}
	sub, err := w.launchSubnet(c.p)
	if err != nil {
		return nil, err
	}
	primary := c.p.str("PrivateIpAddress")
	if primary != "" && maxCount > 1 {
		return nil, invalidCombination("A private IP address can only be specified when launching a single instance.")
	}
	specs, err := parseTagSpecs(c.p, "instance", "network-interface", "volume")
	if err != nil {
		return nil, err
	}
	itype := c.p.str("InstanceType")
	if itype == "" {
		itype = defaultInstanceType
	}
	// Launch as many as the subnet has addresses for, at least MinCount.
	n := min(maxCount, w.spaces[sub.ID].available())
	if n < minCount {
		return nil, clientError("InsufficientFreeAddressesInSubnet",
			"There are not enough free addresses in subnet '%s' to satisfy the requested number of instances.", sub.ID)
	}
	resID := w.newID("r")
	out := &runInstancesResponse{xmlReservation: xmlReservation{ReservationID: resID, OwnerID: w.accountID}}
	for i := range n {
		eni, err := w.newENI(sub, primary, "", "interface")
		if err != nil {
			return nil, err
		}
		eni.Tags = maps.Clone(specs["network-interface"])
		inst := &Instance{
			ID:               w.newID("i"),
			ReservationID:    resID,
			ImageID:          imageID,
			InstanceType:     itype,
			State:            stateRunning,
			SubnetID:         sub.ID,
			VpcID:            sub.VpcID,
			AvailabilityZone: sub.AvailabilityZone,
			LaunchIndex:      i,
			LaunchTime:       c.now.UTC().Truncate(time.Second),
			Tags:             maps.Clone(specs["instance"]),
		}
		w.instances[inst.ID] = inst
		w.attach(eni, inst, 0, true, c.now)
		out.Instances = append(out.Instances, w.renderInstance(inst, statePending))
	}
	if token != "" {
		w.clientTokens["run/"+token] = resID
	}
	return out, nil
}

// launchSubnet picks the subnet from SubnetId or Placement.AvailabilityZone.
// The emulated VPC is not a default VPC, so naming neither is an error.
func (w *world) launchSubnet(p params) (*Subnet, error) {
	zone := p.sub("Placement").str("AvailabilityZone")
	if id := p.str("SubnetId"); id != "" {
		sub, err := w.lookupSubnet(id)
		if err != nil {
			return nil, err
		}
		if zone != "" && zone != sub.AvailabilityZone {
			return nil, invalidValue("Subnet %s is in %s, not in the requested zone %s.", id, sub.AvailabilityZone, zone)
		}
		return sub, nil
	}
	if zone != "" {
		if sub := w.subnetInZone(zone); sub != nil {
			return sub, nil
		}
		return nil, invalidValue("Invalid availability zone: [%s]", zone)
	}
	return nil, clientError("VPCIdNotSpecified", "No default VPC for this user. Specify a subnet.")
}

// reservationResponse answers a retried RunInstances with what the first
// call launched.
func (w *world) reservationResponse(resID string) response {
	out := &runInstancesResponse{xmlReservation: xmlReservation{ReservationID: resID, OwnerID: w.accountID}}
	for _, id := range sortedKeys(w.instances) {
		if inst := w.instances[id]; inst.ReservationID == resID {
			out.Instances = append(out.Instances, w.renderInstance(inst, ""))
		}
	}
	return out
}

type xmlStateChange struct {
	InstanceID    string           `xml:"instanceId"`
	CurrentState  xmlInstanceState `xml:"currentState"`
	PreviousState xmlInstanceState `xml:"previousState"`
}

type terminateInstancesResponse struct {
	respMeta
	Instances items[xmlStateChange] `xml:"instancesSet"`
}

// terminateInstances ends instances at once; the answer says shutting-down,
// as EC2's does, while later describes already see terminated. ENIs marked
// delete-on-termination go, with their Elastic IP associations; others are
// detached and keep theirs.
func (w *world) terminateInstances(c call) (response, error) {
	ids := c.p.list("InstanceId")
	if len(ids) == 0 {
		return nil, missingParameter("InstanceId")
	}
	var insts []*Instance
	for _, id := range ids {
		inst, err := w.lookupInstance(id)
		if err != nil {
			return nil, err
		}
		insts = append(insts, inst)
	}
	out := &terminateInstancesResponse{}
	for _, inst := range insts {
		prev := inst.State
		current := stateShuttingDown
		if prev == stateTerminated {
			current = stateTerminated
		} else {
			w.terminate(inst, c.now)
		}
		out.Instances.Item = append(out.Instances.Item, xmlStateChange{
			InstanceID:    inst.ID,
			CurrentState:  instanceState(current),
			PreviousState: instanceState(prev),
		})
	}
	return out, nil
}

func (w *world) terminate(inst *Instance, now time.Time) {
	for _, id := range append([]string(nil), inst.NetworkInterfaceIDs...) {
		eni := w.enis[id]
		if eni.Attachment.DeleteOnTermination {
			w.deleteENI(eni)
		} else {
			w.detach(eni)
		}
	}
	inst.State = stateTerminated
	t := now.UTC()
	inst.TerminatedAt = &t
}

// pruneTerminated forgets instances terminated longer ago than EC2 keeps them.
func (w *world) pruneTerminated(now time.Time) {
	for id, inst := range w.instances {
		if inst.TerminatedAt != nil && now.Sub(*inst.TerminatedAt) > terminatedRetention {
			delete(w.instances, id)
		}
	}
}

var instanceFilters = map[string]bool{
	"availability-zone": true, "image-id": true, "instance-id": true, "instance-state-name": true,
	"instance-state-code": true, "instance-type": true, "ip-address": true,
	"network-interface.network-interface-id": true, "private-ip-address": true,
	"reservation-id": true, "subnet-id": true, "vpc-id": true,
}

type describeInstancesResponse struct {
	respMeta
	Reservations items[xmlReservation] `xml:"reservationSet"`
	NextToken    string                `xml:"nextToken,omitempty"`
}

func (w *world) describeInstances(c call) (response, error) {
	w.pruneTerminated(c.now)
	fs, err := parseFilters(c.p, instanceFilters)
	if err != nil {
		return nil, err
	}
	ids := c.p.list("InstanceId")
	pr, err := parsePaging(c.p, len(ids) > 0)
	if err != nil {
		return nil, err
	}
	candidates := sortedKeys(w.instances)
	if len(ids) > 0 {
		wanted := map[string]bool{}
		for _, id := range ids {
			if _, err := w.lookupInstance(id); err != nil {
				return nil, err
			}
			wanted[id] = true
		}
		candidates = sortedKeys(wanted)
	}
	var matched []string
	for _, id := range candidates {
		inst := w.instances[id]
		if fs.match(func(name string) []string { return w.instanceAttr(inst, name) }, inst.Tags) {
			matched = append(matched, id)
		}
	}
	page, next := pr.page(matched)
	out := &describeInstancesResponse{NextToken: next}
	byReservation := map[string]int{}
	for _, id := range page {
		inst := w.instances[id]
		i, ok := byReservation[inst.ReservationID]
		if !ok {
			i = len(out.Reservations.Item)
			byReservation[inst.ReservationID] = i
			out.Reservations.Item = append(out.Reservations.Item, xmlReservation{
				ReservationID: inst.ReservationID, OwnerID: w.accountID,
			})
		}
		r := &out.Reservations.Item[i]
		r.Instances = append(r.Instances, w.renderInstance(inst, ""))
	}
	return out, nil
}

func (w *world) instanceAttr(inst *Instance, name string) []string {
	switch name {
	case "availability-zone":
		return []string{inst.AvailabilityZone}
	case "image-id":
		return []string{inst.ImageID}
	case "instance-id":
		return []string{inst.ID}
	case "instance-state-name":
		return []string{inst.State}
	case "instance-state-code":
		return []string{strconv.Itoa(stateCodes[inst.State])}
	case "instance-type":
		return []string{inst.InstanceType}
	case "ip-address", "private-ip-address":
		private, public := w.primaryAddresses(inst)
		if name == "ip-address" {
			return nonEmpty(public)
		}
		return nonEmpty(private)
	case "network-interface.network-interface-id":
		return inst.NetworkInterfaceIDs
	case "reservation-id":
		return []string{inst.ReservationID}
	case "subnet-id", "vpc-id":
		if inst.State == stateTerminated {
			return nil
		}
		if name == "subnet-id" {
			return []string{inst.SubnetID}
		}
		return []string{inst.VpcID}
	}
	return nil
}

// primaryAddresses are the instance's primary private IP and the Elastic IP
// on it, which EC2 reports as the instance's own addresses.
func (w *world) primaryAddresses(inst *Instance) (private, public string) {
	if len(inst.NetworkInterfaceIDs) == 0 {
		return "", ""
	}
	eni := w.enis[inst.NetworkInterfaceIDs[0]]
	private = eni.PrivateIPs[0]
	if a := w.byPrivateIP[eniIP{eni.ID, private}]; a != nil {
		public = a.PublicIP
	}
	return private, public
}

type stopInstancesResponse struct {
	respMeta
	Instances items[xmlStateChange] `xml:"instancesSet"`
}

type startInstancesResponse struct {
	respMeta
	Instances items[xmlStateChange] `xml:"instancesSet"`
}

// stopInstances stops instances at once; the answer says stopping, as
// EC2's does, while later describes see stopped. A stopped instance keeps
// its ENIs, their private IPs and their Elastic IP associations.
func (w *world) stopInstances(c call) (response, error) {
	changes, err := w.changeState(c, stateStopping, stateStopped, stateRunning)
	if err != nil {
		return nil, err
	}
	return &stopInstancesResponse{Instances: changes}, nil
}

// startInstances starts stopped instances again, running at once.
func (w *world) startInstances(c call) (response, error) {
	changes, err := w.changeState(c, statePending, stateRunning, stateStopped)
	if err != nil {
		return nil, err
	}
	return &startInstancesResponse{Instances: changes}, nil
}

// changeState moves the named instances from one of the states from to
// end, answering answered as EC2 does for the transition; an instance
// already in end is left as it is, and one in any other state refuses the
// whole call.
func (w *world) changeState(c call, answered, end string, from ...string) (items[xmlStateChange], error) {
	var out items[xmlStateChange]
	ids := c.p.list("InstanceId")
	if len(ids) == 0 {
		return out, missingParameter("InstanceId")
	}
	var insts []*Instance
	for _, id := range ids {
		inst, err := w.lookupInstance(id)
		if err != nil {
			return out, err
		}
		if inst.State != end && !slices.Contains(from, inst.State) {
			return out, clientError("IncorrectInstanceState",
				"The instance '%s' is not in a state from which it can be %s.", id, end)
		}
		insts = append(insts, inst)
	}
	for _, inst := range insts {
		prev, current := inst.State, answered
		if prev == end {
			current = end
		}
		inst.State = end
		out.Item = append(out.Item, xmlStateChange{InstanceID: inst.ID, CurrentState: instanceState(current), PreviousState: instanceState(prev)})
	}
	return out, nil
}
