//go:build race

package stack

// raceEnabled is true in binaries built with -race; BuildKubeEIP then
// builds kube-eip with it too, which checks the webhook process for races
// and reuses the packages the race-enabled test build compiled.
const raceEnabled = true
