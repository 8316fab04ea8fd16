package nfq

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat"
)

// CTA_* of include/uapi/linux/netfilter/nfnetlink_conntrack.h.
const (
	ctaTupleOrig  = 1
	ctaMark       = 8
	ctaMarkMask   = 21
	ctaLabels     = 22
	ctaLabelsMask = 23
	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaIPv4Src    = 1
	ctaIPv4Dst    = 2
	ctaIPv6Src    = 3
	ctaIPv6Dst    = 4
	ctaProtoNum   = 1
	ctaProtoSrc   = 2
	ctaProtoDst   = 3

	nfnlSubsysCTNetlink = 1
	ctMsgNew            = nfnlSubsysCTNetlink << 8 // IPCTNL_MSG_CT_NEW (message 0)
	nlaFNested          = 1 << 15
)

// ctStore writes natalg's facts into conntrack entries: an
// IPCTNL_MSG_CT_NEW request without NLM_F_CREATE, which the kernel applies
// to the entry with the given tuple (ctnetlink_change_conntrack: the mark
// under CTA_MARK_MASK, the labels under CTA_LABELS_MASK) or refuses with
// ENOENT when there is none. One request and its acknowledgment per call,
// on a netlink socket of its own, built in a reused buffer: nothing is
// allocated.
type ctStore struct {
	fd   int
	seq  uint32
	wbuf []byte
	rbuf []byte
}

func openCTStore() (*ctStore, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("conntrack netlink: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("conntrack netlink: bind: %w", err)
	}
	// never wait for an answer for long: the packet waits for it
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("conntrack netlink: %w", err)
	}
	return &ctStore{fd: fd, wbuf: make([]byte, 0, 512), rbuf: make([]byte, 4096)}, nil
}

func (s *ctStore) close() { unix.Close(s.fd) }

// nest opens a nested attribute of type typ in b and returns where its
// length goes.
func nest(b []byte, typ uint16) ([]byte, int) {
	at := len(b)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint16(b, typ|nlaFNested)
	return b, at
}

func closeNest(b []byte, at int) { binary.NativeEndian.PutUint16(b[at:], uint16(len(b)-at)) }

// attr appends a flat attribute of the given bytes, padded to 4.
func ctAttr(b []byte, typ uint16, data ...byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(nlaHdrLen+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// appendTuple appends tu as the nested attribute typ (CTA_TUPLE_ORIG or
// CTA_TUPLE_REPLY) of family fam.
func appendTuple(b []byte, typ uint16, fam byte, tu *conntrack.Tuple) []byte {
	b, orig := nest(b, typ)
	b, ip := nest(b, ctaTupleIP)
	if fam == unix.AF_INET {
		src, dst := tu.Src.As4(), tu.Dst.As4()
		b = ctAttr(b, ctaIPv4Src, src[:]...)
		b = ctAttr(b, ctaIPv4Dst, dst[:]...)
	} else {
		src, dst := tu.Src.As16(), tu.Dst.As16()
		b = ctAttr(b, ctaIPv6Src, src[:]...)
		b = ctAttr(b, ctaIPv6Dst, dst[:]...)
	}
	closeNest(b, ip)
	b, proto := nest(b, ctaTupleProto)
	b = ctAttr(b, ctaProtoNum, byte(tu.Proto))
	b = ctAttr(b, ctaProtoSrc, byte(tu.SrcPort>>8), byte(tu.SrcPort))
	b = ctAttr(b, ctaProtoDst, byte(tu.DstPort>>8), byte(tu.DstPort))
	closeNest(b, proto)
	closeNest(b, orig)
	return b
}

// put stores f in the conntrack entry of f.Tuple.
func (s *ctStore) put(f *nat.CTFacts) error {
	tu := &f.Tuple
	fam := byte(unix.AF_INET)
	if !tu.Src.Is4() {
		fam = unix.AF_INET6
	}
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK)
	s.seq++
	b := s.wbuf[:0]
	b = binary.NativeEndian.AppendUint32(b, 0) // length, below
	b = binary.NativeEndian.AppendUint16(b, ctMsgNew)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, s.seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, fam, 0 /* NFNETLINK_V0 */, 0, 0)
	b = appendTuple(b, ctaTupleOrig, fam, tu)
	if f.SetLabels {
		b = ctAttr(b, ctaLabels, f.Labels[:]...)
		b = binary.NativeEndian.AppendUint16(b, nlaHdrLen+nat.LabelBytes)
		b = binary.NativeEndian.AppendUint16(b, ctaLabelsMask)
		for range nat.LabelBytes {
			b = append(b, 0xff)
		}
	}
	if f.SetMark {
		b = ctAttr(b, ctaMark, byte(f.Mark>>24), byte(f.Mark>>16), byte(f.Mark>>8), byte(f.Mark))
		b = ctAttr(b, ctaMarkMask, byte(f.Mask>>24), byte(f.Mask>>16), byte(f.Mask>>8), byte(f.Mask))
	}
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	s.wbuf = b
	if _, err := unix.Write(s.fd, b); err != nil {
		return fmt.Errorf("conntrack update: %w", err)
	}
	for {
		n, err := unix.Read(s.fd, s.rbuf)
		if err != nil {
			return fmt.Errorf("conntrack update: %w", err)
		}
		for m := s.rbuf[:n]; len(m) >= nlmsgHdrLen; {
			mlen := int(binary.NativeEndian.Uint32(m[0:4]))
			if mlen < nlmsgHdrLen || mlen > len(m) {
				break
			}
			if binary.NativeEndian.Uint16(m[4:6]) == unix.NLMSG_ERROR && binary.NativeEndian.Uint32(m[8:12]) == s.seq && mlen >= nlmsgHdrLen+4 {
				if code := int32(binary.NativeEndian.Uint32(m[nlmsgHdrLen:])); code != 0 {
					return syscall.Errno(-code)
				}
				return nil
			}
			m = m[min(align4(mlen), len(m)):]
		}
	}
}
