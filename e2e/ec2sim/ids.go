package ec2sim

import (
	cryptorand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
)

// AWS's current resource ids are a prefix and 17 lowercase hex digits.
const idHexLen = 17

func randomHex(rng *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	b.Grow(n)
	for range n {
		b.WriteByte(digits[rng.IntN(16)])
	}
	return b.String()
}

// newID returns an unused id such as eipalloc-0f3c…; the check matters when
// a fixed seed replays the sequence that produced a loaded state file.
func (w *world) newID(prefix string) string {
	for {
		// Current AWS ids start with a 0 digit.
		id := prefix + "-0" + randomHex(w.rng, idHexLen-1)
		if !w.taken[id] {
			w.taken[id] = true
			return id
		}
	}
}

// validID tells whether s looks like an id of the given prefix: AWS answers
// malformed ids with …Malformed codes rather than …NotFound.
func validID(s, prefix string) bool {
	hex, ok := strings.CutPrefix(s, prefix+"-")
	if !ok || (len(hex) != 8 && len(hex) != idHexLen) {
		return false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// newMAC is a locally administered unicast address, as VPC ENIs carry.
func newMAC(rng *rand.Rand) string {
	b := binary.BigEndian.AppendUint64(nil, rng.Uint64())
	b[0] = b[0]&^0x03 | 0x02
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// newRequestID is the UUID-shaped id EC2 returns with every answer.
func newRequestID() string {
	var b [16]byte
	_, _ = cryptorand.Read(b[:]) // never fails on Linux
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// newRNG is the source of ids, addresses and fault draws. It is seeded
// rather than cryptographic so a run can be replayed; nothing here is secret.
func newRNG(seed1, seed2 uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed1, seed2)) //nolint:gosec // reproducibility, not secrecy
}

// randomSeed draws a seed when the caller gave none.
func randomSeed() uint64 {
	var b [8]byte
	_, _ = cryptorand.Read(b[:]) // never fails on Linux
	return binary.LittleEndian.Uint64(b[:])
}
