package egress

// RequireLoopback exposes the connect-time guard, which no loopback dial
// can trip, to the tests.
var RequireLoopback = requireLoopback
