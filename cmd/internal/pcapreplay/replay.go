package pcapreplay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/header"
)

// Packet is one frame of a capture.
type Packet struct {
	Time     time.Time
	Data     []byte
	LinkType layers.LinkType
	Orig     int // length on the wire (CaptureInfo.Length)
}

// IP returns the packet's IP datagram, or nil.
func (p *Packet) IP() []byte {
	off, ok := ipOffset(p.LinkType, p.Data)
	if !ok {
		return nil
	}
	return p.Data[off:]
}

type packetReader interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

// open detects pcap or pcapng by the magic number.
func open(r io.Reader) (packetReader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("reading capture header: %w", err)
	}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("pcapng: %w", err)
		}
		return ng, nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	return pr, nil
}

// ReadAll reads every packet of a pcap or pcapng capture.
func ReadAll(r io.Reader) ([]Packet, error) {
	pr, err := open(r)
	if err != nil {
		return nil, err
	}
	lt := pr.LinkType()
	var out []Packet
	for {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("packet %d: %w", len(out)+1, err)
		}
		out = append(out, Packet{Time: ci.Timestamp, Data: bytes.Clone(data), LinkType: lt, Orig: ci.Length})
	}
}

// Summary counts what a replay did.
type Summary struct {
	In, Out, Dropped, NotIP, CaptureTruncated int
	Held                                      int // fragments held for reassembly (their datagram leaves with the last)
	Engine                                    nat.Summary
	Flows, Expectations                       int
}

// Rewrite describes a packet whose transport payload the engine changed.
type Rewrite struct {
	Index    int    // 1-based packet number in the input
	Before   []byte // the IP packet as read
	After    []byte // the IP packet as written
	Payloads [2][]byte
}

// Options tune a replay.
type Options struct {
	// OnRewrite, if set, is called for every packet whose payload changed.
	OnRewrite func(Rewrite)
}

// Replay runs every packet of the capture in r through eng, in order and at
// its capture time, and writes the accepted ones, with their link-layer
// headers, to w as a pcap file of the same link type. Fragments of a
// datagram are held until the last one, which is followed in w by the
// whole datagram translated and cut again (nat.Packet.More). Non-IP frames are
// written unchanged. Frames cut short by the capture's snap length are
// dropped: a translation of part of a packet cannot be right.
func Replay(eng *nat.Engine, r io.Reader, w io.Writer) (Summary, error) {
	return ReplayWith(eng, r, w, Options{})
}

// replayBatch is the number of packets the replay device hands to
// Engine.Serve at a time.
const replayBatch = 64

// ReplayWith is Replay with options. The capture is a nat.Device (device)
// served by eng.Serve, as the NFQUEUE and TUN front ends are.
func ReplayWith(eng *nat.Engine, r io.Reader, w io.Writer, opt Options) (Summary, error) {
	pr, err := open(r)
	if err != nil {
		return Summary{}, err
	}
	lt := pr.LinkType()
	if err := supported(lt); err != nil {
		return Summary{}, err
	}
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(262144, lt); err != nil {
		return Summary{}, fmt.Errorf("writing pcap header: %w", err)
	}
	dev := &device{eng: eng, pr: pr, lt: lt, pw: pw, opt: opt}
	err = eng.Serve(context.Background(), dev, replayBatch)
	sum := dev.sum
	sum.Engine = eng.Stats.Snapshot()
	sum.Flows = eng.Table().Len()
	sum.Expectations = eng.Table().ExpectationCount()
	return sum, err
}

// device is a capture being replayed, as a nat.Device. ReadBatch hands out
// the IP packets of the capture in order; a batch ends early where the
// engine must see something between two packets: before a packet whose
// capture time is a second or more past the last expiry sweep (the sweep,
// Engine.Expire at that time, runs before the packet is handed out) and
// before a non-IP frame (written as it is, after the packets before it).
// WriteBatch writes the accepted packets with their link-layer headers.
// The output is therefore the same as processing one packet at a time.
type device struct {
	eng *nat.Engine
	pr  packetReader
	lt  layers.LinkType
	pw  *pcapgo.Writer
	opt Options
	sum Summary

	lastSweep time.Time
	// next is the frame read but not yet handed out (haveNext)
	next     frame
	haveNext bool
	// batch holds, per slot of the batch handed out, where its frame came
	// from
	batch []frame
}

// frame is one frame of the capture.
type frame struct {
	data  []byte
	ci    gopacket.CaptureInfo
	index int    // 1-based number in the capture
	off   int    // where the IP packet starts
	orig  []byte // the IP packet as read, kept for Options.OnRewrite
}

// ReadBatch fills ps with the next IP packets of the capture. At the end of
// the capture it returns nat.ErrClosed.
func (d *device) ReadBatch(_ context.Context, ps []nat.Packet) (int, error) {
	d.batch = d.batch[:0]
	n := 0
	for n < len(ps) {
		if !d.haveNext {
			data, ci, err := d.pr.ReadPacketData()
			if errors.Is(err, io.EOF) {
				if n > 0 {
					return n, nil
				}
				return 0, nat.ErrClosed
			}
			if err != nil {
				return n, fmt.Errorf("packet %d: %w", d.sum.In+1, err)
			}
			d.sum.In++
			d.next, d.haveNext = frame{data: data, ci: ci, index: d.sum.In}, true
		}
		f := &d.next
		if f.ci.Timestamp.Sub(d.lastSweep) >= time.Second {
			if n > 0 {
				return n, nil // the packets before the sweep go first
			}
			d.eng.Expire(f.ci.Timestamp)
			d.lastSweep = f.ci.Timestamp
		}
		off, isIP := ipOffset(d.lt, f.data)
		if !isIP {
			if n > 0 {
				return n, nil // the packets before it are written first
			}
			d.haveNext = false
			d.sum.NotIP++
			if err := write(d.pw, f.ci, f.data); err != nil {
				return 0, err
			}
			d.sum.Out++
			continue
		}
		d.haveNext = false
		if f.ci.CaptureLength < f.ci.Length {
			d.sum.CaptureTruncated++
			d.sum.Dropped++
			continue
		}
		f.off = off
		p := &ps[n]
		p.N = copy(p.Buf[:cap(p.Buf)], f.data[off:])
		if p.N < len(f.data)-off {
			return n, fmt.Errorf("packet %d: %d bytes, more than the engine's buffer", f.index, len(f.data)-off)
		}
		p.Time = f.ci.Timestamp
		p.ID = uint64(f.index)
		if d.opt.OnRewrite != nil {
			f.orig = bytes.Clone(f.data[off:])
		}
		d.batch = append(d.batch, *f)
		n++
	}
	return n, nil
}

// WriteBatch writes the accepted packets of ps, each behind the link-layer
// header of its frame; a packet with More (a reassembled datagram cut
// again) is followed by those fragments, behind the same header. Held
// fragments are counted, not written: their datagram leaves with the last.
func (d *device) WriteBatch(ps []nat.Packet) error {
	for i := range ps {
		p, f := &ps[i], &d.batch[i]
		switch p.Verdict {
		case nat.Accept:
		case nat.Held:
			d.sum.Held++
			continue
		default:
			d.sum.Dropped++
			continue
		}
		out := p.Out
		if d.opt.OnRewrite != nil {
			if before, after := transportPayload(f.orig), transportPayload(out); !bytes.Equal(before, after) {
				d.opt.OnRewrite(Rewrite{Index: f.index, Before: f.orig, After: bytes.Clone(out), Payloads: [2][]byte{before, bytes.Clone(after)}})
			}
		}
		for j := 0; j <= len(p.More); j++ {
			if j > 0 {
				out = p.More[j-1]
			}
			if err := d.writeIP(f, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeIP writes the IP packet out behind the link-layer header of frame f.
func (d *device) writeIP(f *frame, out []byte) error {
	frame := make([]byte, 0, f.off+len(out))
	frame = append(append(frame, f.data[:f.off]...), out...)
	if ver := out[0] >> 4; ver != f.data[f.off]>>4 && !setFamily(d.lt, frame, f.off, ver) {
		// NAT64 changed the family and the link type cannot say so
		d.sum.Dropped++
		return nil
	}
	ci := f.ci
	ci.CaptureLength, ci.Length = len(frame), len(frame)
	if err := write(d.pw, ci, frame); err != nil {
		return err
	}
	d.sum.Out++
	return nil
}

// transportPayload returns the TCP or UDP payload of an IP packet, or nil.
func transportPayload(ip []byte) []byte {
	var p header.Parsed
	if p.Decode(ip) != header.Ok {
		return nil
	}
	return p.Payload()
}

func write(pw *pcapgo.Writer, ci gopacket.CaptureInfo, frame []byte) error {
	if err := pw.WritePacket(ci, frame); err != nil {
		return fmt.Errorf("writing packet: %w", err)
	}
	return nil
}
