package ipproto

import "testing"

func TestProtoString(t *testing.T) {
	for _, tc := range []struct {
		proto Proto
		want  string
	}{
		{TCP, "tcp"}, {UDP, "udp"}, {ICMPv4, "icmp"}, {ICMPv6, "icmpv6"},
		{Fragment, "ipv6-frag"}, {Proto(132), "proto-132"}, {Proto(255), "proto-255"}, {Proto(2), "proto-2"},
	} {
		if got := tc.proto.String(); got != tc.want {
			t.Errorf("Proto(%d).String() = %q, want %q", uint8(tc.proto), got, tc.want)
		}
	}
}

func TestTCPFlagsString(t *testing.T) {
	for _, tc := range []struct {
		flags TCPFlags
		want  string
	}{
		{0, "."}, {TCPSYN, "S"}, {TCPSYN | TCPACK, "SA"}, {TCPFIN | TCPPSH | TCPACK, "FPA"},
		{TCPRST | TCPACK, "RA"}, {0xff, "FSRPAUEC"},
	} {
		if got := tc.flags.String(); got != tc.want {
			t.Errorf("TCPFlags(%#x).String() = %q, want %q", uint8(tc.flags), got, tc.want)
		}
	}
}

func TestIsICMP(t *testing.T) {
	for p := range 256 {
		want := p == 1 || p == 58
		if got := Proto(p).IsICMP(); got != want {
			t.Errorf("Proto(%d).IsICMP() = %v", p, got)
		}
	}
}
