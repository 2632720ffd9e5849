package api

// SameBorderGroup tells whether an Elastic IP of network border group have
// may go to a holder in a zone of group want: EC2 associates an address
// only within its group. An unknown group (empty) on either side is left
// for EC2 to decide.
func SameBorderGroup(have, want string) bool { return have == "" || want == "" || have == want }
