package nat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat/header"
	"github.com/natalg/natalg/nat/ipproto"
)

// readPcapIP returns the IP packets of a classic pcap file of Ethernet
// frames (enough for the seeds; the replay front end reads every format).
func readPcapIP(t testing.TB, path string) [][]byte {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 24 {
		t.Fatalf("%s: %v", path, err)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if binary.BigEndian.Uint32(b) == 0xa1b2c3d4 || binary.BigEndian.Uint32(b) == 0xa1b23c4d {
		bo = binary.BigEndian
	}
	if bo.Uint32(b[20:]) != 1 {
		t.Fatalf("%s: not Ethernet", path)
	}
	var out [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		frame := b[off : off+n]
		off += n
		if len(frame) > 14 && (frame[12] == 0x08 && frame[13] == 0x00 || frame[12] == 0x86 && frame[13] == 0xdd) {
			out = append(out, bytes.Clone(frame[14:]))
		}
	}
	return out
}

// checksumsValid reports whether every checksum of an IP packet verifies.
func checksumsValid(b []byte) bool {
	var p header.Parsed
	if p.Decode(bytes.Clone(b)) != header.Ok {
		return false
	}
	if p.Version == 4 && !p.IPv4().IsChecksumValid() {
		return false
	}
	return p.L4ChecksumValid()
}

// FuzzProcess feeds arbitrary packets, each a batch of one through
// ProcessBatch, to an engine that already carries an FTP control session
// and a plain flow. Properties: it never panics; every accepted packet
// decodes; a packet whose checksums were right leaves with right checksums
// (incremental updates agree with a full recompute); a payload rewrite
// changes the length by exactly the delta it records.
func FuzzProcess(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/kernel/*/in.pcap")
	for _, s := range seeds {
		for _, p := range readPcapIP(f, s) {
			f.Add(p)
		}
	}
	for _, s := range []tcpSeg{
		cmd(1001, portIn), cmd(1001, "PORT 198,18,0,2,1"), cmd(1001, "TYPE I\r\n"+portIn),
		cmd(1001, "EPRT !1!198.18.0.2!50000!\r\n"), cmd(1007, "NOOP\r\n"),
		{src: srv, dst: pubCli, seq: 5009, ack: 1029, flags: fACK, sack: [][2]uint32{{1029, 1041}}},
		{src: srv, dst: pubCli, seq: 5009, ack: 1001, flags: fACK | fPSH, payload: "227 (198,18,0,2,1,2)\r\n"},
		// hairpinned: another inside host to the client's mappings
		{src: ap("198.18.0.5:1234"), dst: pubCli, seq: 1, flags: fSYN},
		{src: ap("198.18.0.5:1234"), dst: netip.AddrPortFrom(pubIP, 40001), seq: 1, ack: 1, flags: fACK},
	} {
		f.Add(s.build())
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		// A hang is a failure too: crash with every goroutine's stack.
		watchdog := time.AfterFunc(5*time.Second, func() { panic("ProcessBatch hung on this input") })
		defer watchdog.Stop()
		e := snatEngine(t)
		handshake(t, e)
		establish(t, e)
		ctl, _ := e.table.Lookup(conntrack.Tuple{Src: cli.Addr(), Dst: srv.Addr(), SrcPort: cli.Port(), DstPort: srv.Port(), Proto: 6}, t0.UnixNano())
		x := ctl.Ext.(*ftpFlow)
		for round := 0; round < 2; round++ { // the second round is a retransmission
			in := bytes.Clone(pkt)
			valid := checksumsValid(in)
			before := [2]int32{x.ledgers[0].Offset(), x.ledgers[1].Offset()}
			buf := make([]byte, len(in), 65535)
			copy(buf, in)
			v, out := e.processPacket(buf, t0)
			if v != Accept {
				continue
			}
			var p header.Parsed
			if r := p.Decode(bytes.Clone(out)); r != header.Ok {
				t.Fatalf("accepted output does not decode (%v): %x", r, out)
			}
			if valid && !checksumsValid(out) {
				t.Fatalf("checksums broken by translation:\n in %x\nout %x", in, out)
			}
			var q header.Parsed
			if q.Decode(bytes.Clone(in)) != header.Ok || q.Proto != ipproto.TCP {
				continue
			}
			after := [2]int32{x.ledgers[0].Offset(), x.ledgers[1].Offset()}
			d := (after[0] - before[0]) + (after[1] - before[1])
			grew := int32(len(p.Payload()) - len(q.Payload()))
			if p.Seq == q.Seq && grew != d && d != 0 {
				t.Fatalf("payload changed by %d bytes, ledger by %d", grew, d)
			}
		}
	})
}
