// Package fakenode is a fake kubelet and AWS VPC CNI for the local control
// plane: it makes pods look as if they ran on EKS nodes, without containers.
//
// It launches one EC2 instance per node in the EC2 emulator through the real
// SDK and registers a Node for each (providerID, EKS-style name and labels),
// keeps the nodes Ready by renewing their Leases, and for every pod the
// scheduler binds to one of them takes a private IP on the node's primary ENI
// the way the VPC CNI does (a secondary IP, or an address from a delegated
// /28 prefix), writes the pod's status and runs it to Running. Like the VPC
// CNI it keeps freed IPs on the ENI in a warm pool, and gives one to another
// pod only after a cooldown, so a deleted pod's Elastic IP stays associated
// with its old IP until someone disassociates it (see CNIOptions). Init
// containers whose image is mapped to a local binary run for real as local
// processes, with the pod's downward-API volumes materialized in a work
// directory and refreshed as the kubelet does; every other container "starts"
// at once. Readiness follows the pod's readiness gates, deletion honours the
// grace period and finalizers and gives the IP back to the warm pool.
//
// Its state lives in the cluster and the emulator, so a restarted Kubelet
// adopts its nodes and rebuilds which IPs are in use from the pods' status;
// the others are its warm pool, cooling from the restart.
package fakenode
