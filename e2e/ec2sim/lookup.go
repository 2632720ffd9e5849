package ec2sim

// Lookups by id for the actions, answering missing, malformed and unknown
// ids with the codes EC2 uses for each resource type.

func (w *world) lookupAddress(id string) (*Address, error) {
	if a := w.addresses[id]; a != nil {
		return a, nil
	}
	return nil, allocationNotFound(id)
}

func (w *world) lookupENI(id string) (*NetworkInterface, error) {
	if id == "" {
		return nil, missingParameter("NetworkInterfaceId")
	}
	if !validID(id, "eni") {
		return nil, malformed("InvalidNetworkInterfaceID.Malformed", id, "eni")
	}
	if e := w.enis[id]; e != nil {
		return e, nil
	}
	return nil, eniNotFound(id)
}

func (w *world) lookupInstance(id string) (*Instance, error) {
	if id == "" {
		return nil, missingParameter("InstanceId")
	}
	if !validID(id, "i") {
		return nil, malformed("InvalidInstanceID.Malformed", id, "i")
	}
	if i := w.instances[id]; i != nil {
		return i, nil
	}
	return nil, instanceNotFound(id)
}

func (w *world) lookupSubnet(id string) (*Subnet, error) {
	if id == "" {
		return nil, missingParameter("SubnetId")
	}
	if !validID(id, "subnet") {
		return nil, malformed("InvalidSubnetID.Malformed", id, "subnet")
	}
	if s := w.subnets[id]; s != nil {
		return s, nil
	}
	return nil, subnetNotFound(id)
}

// runningInstance is an instance that can take an association or an ENI.
func (w *world) runningInstance(id string) (*Instance, error) {
	inst, err := w.lookupInstance(id)
	if err != nil {
		return nil, err
	}
	if inst.State != stateRunning {
		return nil, clientError("IncorrectInstanceState",
			"The instance '%s' is not in a valid state for this operation.", id)
	}
	return inst, nil
}
