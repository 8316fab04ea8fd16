package pcapreplay

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// TestNAT64Golden replays the NAT64 sessions of testdata/nat64, captured on
// natalg run's TUN device (LINKTYPE_RAW, both directions: what the kernel
// routed into the device and what natalg wrote back), and requires the
// output to equal golden.pcap byte for byte (testdata/nat64/record.sh
// records both). It also checks the replay against the live run: every
// packet the replay translates must be in the capture, as natalg run wrote
// it into the device, but for the IPv4 Identification (the live engine
// also numbered packets the capture lost or that came before it).
func TestNAT64Golden(t *testing.T) {
	dirs, err := filepath.Glob("../../../testdata/nat64/*/args")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Skip("no recorded NAT64 sessions in testdata/nat64 (run testdata/nat64/record.sh as root)")
	}
	for _, a := range dirs {
		dir := filepath.Dir(a)
		t.Run(filepath.Base(dir), func(t *testing.T) { checkNAT64Golden(t, dir) })
	}
}

func checkNAT64Golden(t *testing.T, dir string) {
	_, sum, got := replayDir(t, dir)
	t.Logf("%d packets in, %d out, %d dropped %v; translated %d, passed %d; rewrites %d, ALG events %v",
		sum.In, sum.Out, sum.Dropped, sum.Engine.Drops, sum.Engine.Translated, sum.Engine.Passed, sum.Engine.Rewrites, sum.Engine.ALG)
	input := readFile(t, filepath.Join(dir, "in.pcap"))
	if len(input) == 0 {
		t.Fatal("in.pcap is empty")
	}
	if lt := input[0].LinkType; lt != layers.LinkTypeRaw && lt != 12 {
		t.Fatalf("in.pcap: link type %v: want a capture of the TUN device (LINKTYPE_RAW)", lt)
	}
	if sum.Engine.Translated == 0 {
		t.Error("the replay translated nothing")
	}
	// byte for byte, the Identification of the IPv4 packets the
	// translator made included: each engine numbers its own (RFC 7915
	// §5.1.1), so a replay is reproducible
	g := readFile(t, filepath.Join(dir, "golden.pcap"))
	n := 0
	for i := 0; i < len(got) && i < len(g) && n < 10; i++ {
		a, b := got[i].IP(), g[i].IP()
		if !bytes.Equal(got[i].Data[:len(got[i].Data)-len(got[i].IP())], g[i].Data[:len(g[i].Data)-len(g[i].IP())]) ||
			!bytes.Equal(a, b) || !got[i].Time.Equal(g[i].Time) {
			n++
			t.Errorf("output packet %d differs:\n  got  %s\n  want %s\n  %s", i+1, Describe(got[i].IP()), Describe(g[i].IP()), firstDiff(a, b))
		}
		if !ipv4HeaderOK(got[i].IP()) {
			t.Errorf("output packet %d: bad IPv4 header checksum: %s", i+1, Describe(got[i].IP()))
		}
	}
	if len(got) != len(g) {
		t.Errorf("%d packets in the output, %d in golden.pcap", len(got), len(g))
	}
	// the live run: what natalg run wrote into the device is in the
	// capture, after what it translated
	seen := map[string]bool{}
	for _, p := range input {
		seen[string(withoutIPv4ID(p.IP()))] = true
	}
	missing := 0
	for i := range got {
		if ip := got[i].IP(); !seen[string(withoutIPv4ID(ip))] {
			if missing++; missing <= 5 {
				t.Errorf("replay output packet %d is not in the live capture: %s", i+1, Describe(ip))
			}
		}
	}
	if missing > 5 {
		t.Errorf("... %d replay output packets in all are not in the live capture", missing)
	}
}

// withoutIPv4ID returns an IPv4 packet with its Identification and header
// checksum zeroed (a copy), other packets as they are.
func withoutIPv4ID(ip []byte) []byte {
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return ip
	}
	c := bytes.Clone(ip)
	c[4], c[5], c[10], c[11] = 0, 0, 0, 0
	return c
}

// ipv4HeaderOK checks the header checksum of an IPv4 packet (true for
// IPv6).
func ipv4HeaderOK(ip []byte) bool {
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return true
	}
	n := int(ip[0]&15) * 4
	if n < 20 || n > len(ip) {
		return false
	}
	var s uint32
	for i := 0; i < n; i += 2 {
		s += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return s == 0xffff
}

// TestSetFamily: after NAT64 changed a packet's family, the link-layer
// header names the new one.
func TestSetFamily(t *testing.T) {
	eth := append(make([]byte, 12), 0x81, 0x00, 0x00, 0x64, 0x08, 0x00, 0x45) // VLAN-tagged IPv4
	sll := append(make([]byte, 14), 0x08, 0x00, 0x45)
	sll2 := append([]byte{0x08, 0x00}, make([]byte, 18)...)
	sll2 = append(sll2, 0x45)
	for _, c := range []struct {
		lt    layers.LinkType
		frame []byte
		at    int
	}{{layers.LinkTypeEthernet, eth, 16}, {layers.LinkTypeLinuxSLL, sll, 14}, {layers.LinkTypeLinuxSLL2, sll2, 0}} {
		off, ok := ipOffset(c.lt, c.frame)
		if !ok {
			t.Fatalf("%v: no IP", c.lt)
		}
		if !setFamily(c.lt, c.frame, off, 6) || !bytes.Equal(c.frame[c.at:c.at+2], []byte{0x86, 0xdd}) {
			t.Errorf("%v: EtherType %x after IPv4 -> IPv6", c.lt, c.frame[c.at:c.at+2])
		}
		if !setFamily(c.lt, c.frame, off, 4) || !bytes.Equal(c.frame[c.at:c.at+2], []byte{0x08, 0x00}) {
			t.Errorf("%v: EtherType %x after IPv6 -> IPv4", c.lt, c.frame[c.at:c.at+2])
		}
	}
	if setFamily(layers.LinkTypeIPv4, []byte{0x45}, 0, 6) || !setFamily(layers.LinkTypeRaw, []byte{0x45}, 0, 6) {
		t.Error("LINKTYPE_IPV4 must refuse IPv6, raw IP take it")
	}
}
