//go:build race

package main

// raceFlags build the binary under test with -race when the test itself
// runs with it: the race detector then covers the binary too, and the build
// reuses the race-instrumented packages the test build just compiled.
var raceFlags = []string{"-race"}
