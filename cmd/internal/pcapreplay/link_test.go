package pcapreplay

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/natalg/natalg/nat"
)

// reframe rewrites Ethernet frames into another link type.
func reframe(t *testing.T, ps []Packet, lt layers.LinkType) []Packet {
	t.Helper()
	out := make([]Packet, len(ps))
	for i, p := range ps {
		ip := p.IP()
		var hdr []byte
		etype := []byte{0x08, 0x00}
		if ip[0]>>4 == 6 {
			etype = []byte{0x86, 0xdd}
		}
		switch lt {
		case layers.LinkTypeRaw:
		case layers.LinkTypeLinuxSLL:
			hdr = make([]byte, 16)
			binary.BigEndian.PutUint16(hdr[2:], 1) // ARPHRD_ETHER
			binary.BigEndian.PutUint16(hdr[4:], 6)
			copy(hdr[6:], p.Data[6:12])
			copy(hdr[14:], etype)
		case layers.LinkTypeLinuxSLL2:
			hdr = make([]byte, 20)
			copy(hdr[0:], etype)
			binary.BigEndian.PutUint32(hdr[4:], 7) // interface index
			binary.BigEndian.PutUint16(hdr[8:], 1)
			hdr[11] = 6
			copy(hdr[12:], p.Data[6:12])
		case layers.LinkTypeEthernet: // with an 802.1Q tag
			hdr = append(append(bytes.Clone(p.Data[:12]), 0x81, 0x00, 0x00, 0x64), etype...)
		}
		out[i] = Packet{Time: p.Time, Data: append(hdr, ip...), LinkType: lt}
	}
	return out
}

func writePcap(t *testing.T, ps []Packet, lt layers.LinkType, ng bool) []byte {
	t.Helper()
	var b bytes.Buffer
	if ng {
		w, err := pcapgo.NewNgWriter(&b, lt)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: len(p.Data)}
			if err := w.WritePacket(ci, p.Data); err != nil {
				t.Fatal(err)
			}
		}
		w.Flush()
		return b.Bytes()
	}
	w := pcapgo.NewWriter(&b)
	w.WriteFileHeader(65536, lt)
	for _, p := range ps {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: len(p.Data)}, p.Data)
	}
	return b.Bytes()
}

// TestLinkTypesAndFormats replays one kernel session framed as raw IP,
// Linux SLL, SLL2 and VLAN-tagged Ethernet, in pcap and pcapng: every output
// must equal the kernel's, with each frame's link header kept.
func TestLinkTypesAndFormats(t *testing.T) {
	dir := "../../../testdata/kernel/snat-port"
	in := readFile(t, dir+"/in.pcap")
	golden := readFile(t, dir+"/golden.pcap")
	cfg := configFromArgs(t, dir+"/args")
	for _, lt := range []layers.LinkType{layers.LinkTypeRaw, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2, layers.LinkTypeEthernet} {
		for _, ng := range []bool{false, true} {
			framed := reframe(t, in, lt)
			eng, _ := nat.New(cfg)
			var out bytes.Buffer
			sum, err := Replay(eng, bytes.NewReader(writePcap(t, framed, lt, ng)), &out)
			if err != nil {
				t.Fatalf("%v ng=%v: %v", lt, ng, err)
			}
			got, err := ReadAll(&out)
			if err != nil || len(got) != len(framed) || sum.Engine.Rewrites != 2 {
				t.Fatalf("%v ng=%v: %d packets, %d rewrites, %v", lt, ng, len(got), sum.Engine.Rewrites, err)
			}
			for _, d := range Compare(got, golden, cfg.Inside, 5) {
				t.Errorf("%v ng=%v: %s", lt, ng, d)
			}
			for i := range got {
				off, _ := ipOffset(lt, framed[i].Data)
				if got[i].LinkType != lt || !bytes.Equal(got[i].Data[:off], framed[i].Data[:off]) {
					t.Fatalf("%v ng=%v: packet %d link header not kept", lt, ng, i+1)
				}
			}
		}
	}
}

// TestNonIPAndTruncatedFrames: ARP passes unchanged, a frame cut by the
// snap length is dropped, never translated.
func TestNonIPAndTruncatedFrames(t *testing.T) {
	in := readFile(t, "../../../testdata/kernel/snat-port/in.pcap")
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	w.WriteFileHeader(65536, layers.LinkTypeEthernet)
	arp := append(bytes.Clone(in[0].Data[:12]), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: in[0].Time, CaptureLength: len(arp), Length: len(arp)}, arp)
	cut := in[0].Data[:40]
	w.WritePacket(gopacket.CaptureInfo{Timestamp: in[0].Time, CaptureLength: len(cut), Length: len(in[0].Data)}, cut)
	eng, _ := nat.New(configFromArgs(t, "../../../testdata/kernel/snat-port/args"))
	var out bytes.Buffer
	sum, err := Replay(eng, &b, &out)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := ReadAll(&out)
	if sum.NotIP != 1 || sum.CaptureTruncated != 1 || len(got) != 1 || !bytes.Equal(got[0].Data, arp) {
		t.Fatalf("summary %+v, %d out", sum, len(got))
	}
}

// TestNonIPFrameKeepsItsPlace: a non-IP frame between IP packets of one
// batch is written between their translations, where it was read.
func TestNonIPFrameKeepsItsPlace(t *testing.T) {
	in := readFile(t, "../../../testdata/kernel/snat-port/in.pcap")
	arp := append(bytes.Clone(in[0].Data[:12]), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1)
	const at = 3
	var frames []Packet
	frames = append(frames, in[:at]...)
	frames = append(frames, Packet{Time: in[at-1].Time, Data: arp, LinkType: layers.LinkTypeEthernet})
	frames = append(frames, in[at:]...)
	eng, _ := nat.New(configFromArgs(t, "../../../testdata/kernel/snat-port/args"))
	var out bytes.Buffer
	sum, err := Replay(eng, bytes.NewReader(writePcap(t, frames, layers.LinkTypeEthernet, false)), &out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll(&out)
	if err != nil || len(got) != len(frames) || sum.NotIP != 1 {
		t.Fatalf("%d of %d frames out, summary %+v, %v", len(got), len(frames), sum, err)
	}
	for i, p := range got {
		if isARP := bytes.Equal(p.Data, arp); isARP != (i == at) {
			t.Fatalf("frame %d: ARP %v, want the ARP frame at %d only", i, isARP, at)
		}
	}
}
