package ec2sim

import (
	"net/netip"
)

// amazonRanges are blocks EC2 really hands out Elastic IPs from in us-east-1,
// so addresses look right in logs and allowlists.
var amazonRanges = []netip.Prefix{
	netip.MustParsePrefix("3.208.0.0/12"),
	netip.MustParsePrefix("18.204.0.0/14"),
	netip.MustParsePrefix("34.192.0.0/12"),
	netip.MustParsePrefix("44.192.0.0/11"),
	netip.MustParsePrefix("52.0.0.0/15"),
	netip.MustParsePrefix("54.144.0.0/12"),
}

const amazonPool = "amazon"

// newPublicIP draws an address no current allocation holds. The network and
// broadcast addresses of each /24 are avoided because EC2 never hands them out.
func (w *world) newPublicIP() string {
	for {
		p := amazonRanges[w.rng.IntN(len(amazonRanges))]
		base := addrToU32(p.Addr())
		span := uint32(1) << (32 - p.Bits())
		a := u32ToAddr(base + w.rng.Uint32N(span))
		if last := a.As4()[3]; last == 0 || last == 255 {
			continue
		}
		if _, taken := w.byPublicIP[a.String()]; !taken {
			return a.String()
		}
	}
}
