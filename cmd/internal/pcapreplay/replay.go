package pcapreplay

import (
	"bufio"
	"bytes"
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

// ReplayWith is Replay with options.
func ReplayWith(eng *nat.Engine, r io.Reader, w io.Writer, opt Options) (Summary, error) {
	var sum Summary
	pr, err := open(r)
	if err != nil {
		return sum, err
	}
	lt := pr.LinkType()
	if err := supported(lt); err != nil {
		return sum, err
	}
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(262144, lt); err != nil {
		return sum, fmt.Errorf("writing pcap header: %w", err)
	}
	// One packet at a time through ProcessBatch, which may answer a
	// fragment that completes a datagram with several packets (Out, then
	// More: the datagram cut again).
	ps := nat.NewBatch(1)
	var lastSweep time.Time
	for {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sum, fmt.Errorf("packet %d: %w", sum.In+1, err)
		}
		sum.In++
		if ci.Timestamp.Sub(lastSweep) >= time.Second {
			eng.Expire(ci.Timestamp)
			lastSweep = ci.Timestamp
		}
		off, isIP := ipOffset(lt, data)
		if !isIP {
			sum.NotIP++
			if err := write(pw, ci, data); err != nil {
				return sum, err
			}
			sum.Out++
			continue
		}
		if ci.CaptureLength < ci.Length {
			sum.CaptureTruncated++
			sum.Dropped++
			continue
		}
		p := &ps[0]
		p.N = copy(p.Buf[:cap(p.Buf)], data[off:])
		p.Time = ci.Timestamp
		var before []byte
		if opt.OnRewrite != nil {
			before = bytes.Clone(p.Buf[:p.N])
		}
		eng.ProcessBatch(ps)
		switch p.Verdict {
		case nat.Accept:
		case nat.Held:
			sum.Held++
			continue
		default:
			sum.Dropped++
			continue
		}
		out := p.Out
		if opt.OnRewrite != nil {
			if a, b := transportPayload(before), transportPayload(out); !bytes.Equal(a, b) {
				opt.OnRewrite(Rewrite{Index: sum.In, Before: before, After: bytes.Clone(out), Payloads: [2][]byte{a, bytes.Clone(b)}})
			}
		}
		for i := 0; i <= len(p.More); i++ {
			if i > 0 {
				out = p.More[i-1]
			}
			frame := make([]byte, 0, off+len(out))
			frame = append(append(frame, data[:off]...), out...)
			if ver := out[0] >> 4; ver != data[off]>>4 && !setFamily(lt, frame, off, ver) {
				// NAT64 changed the family and the link type cannot say so
				sum.Dropped++
				continue
			}
			ci.CaptureLength, ci.Length = len(frame), len(frame)
			if err := write(pw, ci, frame); err != nil {
				return sum, err
			}
			sum.Out++
		}
	}
	sum.Engine = eng.Stats.Snapshot()
	sum.Flows = eng.Table().Len()
	sum.Expectations = eng.Table().ExpectationCount()
	return sum, nil
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
