// Package pcapreplay runs a packet capture through the engine and writes the
// translated capture: the pcap front end of natalg. It reads pcap and pcapng
// (github.com/gopacket/gopacket/pcapgo), understands Ethernet (with 802.1Q
// and 802.1ad tags), raw IP and Linux cooked captures (SLL and SLL2), and
// keeps each frame's link-layer header.
package pcapreplay

import (
	"encoding/binary"
	"fmt"

	"github.com/gopacket/gopacket/layers"
)

// ipOffset returns the offset of the IP header in a frame of link type lt,
// or ok=false when the frame carries no IPv4 or IPv6 packet (ARP, say).
func ipOffset(lt layers.LinkType, frame []byte) (off int, ok bool) {
	var etherType uint16
	switch lt {
	case layers.LinkTypeEthernet:
		off = 14
		if len(frame) < off {
			return 0, false
		}
		etherType = binary.BigEndian.Uint16(frame[12:14])
		for etherType == 0x8100 || etherType == 0x88a8 { // VLAN tags
			if len(frame) < off+4 {
				return 0, false
			}
			etherType = binary.BigEndian.Uint16(frame[off+2 : off+4])
			off += 4
		}
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, 12, 14:
		if len(frame) == 0 {
			return 0, false
		}
		v := frame[0] >> 4
		return 0, v == 4 || v == 6
	case layers.LinkTypeLinuxSLL:
		off = 16
		if len(frame) < off {
			return 0, false
		}
		etherType = binary.BigEndian.Uint16(frame[14:16])
	case layers.LinkTypeLinuxSLL2:
		off = 20
		if len(frame) < off {
			return 0, false
		}
		etherType = binary.BigEndian.Uint16(frame[0:2])
	default:
		return 0, false
	}
	switch etherType {
	case 0x0800, 0x86dd:
		return off, true
	}
	return 0, false
}

// setFamily makes the link-layer header of frame (IP header at off) name
// the family of IP version ver, after a translation changed it (NAT64,
// RFC 7915): the EtherType of Ethernet (after any VLAN tags) and of Linux
// SLL and SLL2. Raw IP needs nothing. It reports false for a link type that
// can carry only one family (LINKTYPE_IPV4, LINKTYPE_IPV6).
func setFamily(lt layers.LinkType, frame []byte, off int, ver byte) bool {
	et := uint16(0x0800)
	if ver == 6 {
		et = 0x86dd
	}
	switch lt {
	case layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL:
		binary.BigEndian.PutUint16(frame[off-2:off], et)
	case layers.LinkTypeLinuxSLL2:
		binary.BigEndian.PutUint16(frame[0:2], et)
	case layers.LinkTypeIPv4:
		return ver == 4
	case layers.LinkTypeIPv6:
		return ver == 6
	}
	return true
}

// supported reports whether natalg can replay link type lt.
func supported(lt layers.LinkType) error {
	switch lt {
	case layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6,
		layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2, 12, 14:
		return nil
	}
	return fmt.Errorf("link type %v (%d) is not supported: want Ethernet, raw IP, Linux SLL or SLL2", lt, int(lt))
}
