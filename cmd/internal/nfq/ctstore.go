package nfq

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"

	"github.com/natalg/natalg/nat"
)

// CTA_* of include/uapi/linux/netfilter/nfnetlink_conntrack.h.
const (
	ctaTupleOrig   = 1
	ctaMark        = 8
	ctaMarkMask    = 21
	ctaLabels      = 22
	ctaLabelsMask  = 23
	ctaTupleIP     = 1
	ctaTupleProto  = 2
	ctaIPv4Src     = 1
	ctaIPv4Dst     = 2
	ctaIPv6Src     = 3
	ctaIPv6Dst     = 4
	ctaProtoNum    = 1
	ctaProtoSrc    = 2
	ctaProtoDst    = 3
	ctMsgNew       = 0 // IPCTNL_MSG_CT_NEW
	labelsMaskByte = 0xff
)

// ctStore writes natalg's facts into existing conntrack entries: an
// IPCTNL_MSG_CT_NEW request without NLM_F_CREATE, which the kernel applies
// to the entry with the given tuple (ctnetlink_change_conntrack: the mark
// under CTA_MARK_MASK, the labels under CTA_LABELS_MASK) or refuses with
// ENOENT when there is none.
type ctStore struct {
	c *netfilter.Conn
}

func openCTStore() (*ctStore, error) {
	c, err := netfilter.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("conntrack netlink: %w", err)
	}
	return &ctStore{c: c}, nil
}

func (s *ctStore) close() { s.c.Close() }

// put stores f in the conntrack entry of f.Tuple.
func (s *ctStore) put(f *nat.CTFacts) error {
	tu := f.Tuple
	ip := netfilter.Attribute{Type: ctaTupleIP, Nested: true}
	fam := netfilter.ProtoIPv4
	if tu.Src.Is4() {
		ip.Children = []netfilter.Attribute{{Type: ctaIPv4Src, Data: tu.Src.AsSlice()}, {Type: ctaIPv4Dst, Data: tu.Dst.AsSlice()}}
	} else {
		fam = netfilter.ProtoIPv6
		ip.Children = []netfilter.Attribute{{Type: ctaIPv6Src, Data: tu.Src.AsSlice()}, {Type: ctaIPv6Dst, Data: tu.Dst.AsSlice()}}
	}
	proto := netfilter.Attribute{Type: ctaTupleProto, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaProtoNum, Data: []byte{tu.Proto}},
		{Type: ctaProtoSrc, Data: binary.BigEndian.AppendUint16(nil, tu.SrcPort)},
		{Type: ctaProtoDst, Data: binary.BigEndian.AppendUint16(nil, tu.DstPort)},
	}}
	attrs := []netfilter.Attribute{{Type: ctaTupleOrig, Nested: true, Children: []netfilter.Attribute{ip, proto}}}
	if f.SetLabels {
		mask := make([]byte, nat.LabelBytes)
		for i := range mask {
			mask[i] = labelsMaskByte
		}
		attrs = append(attrs, netfilter.Attribute{Type: ctaLabels, Data: append([]byte(nil), f.Labels[:]...)},
			netfilter.Attribute{Type: ctaLabelsMask, Data: mask})
	}
	if f.SetMark {
		attrs = append(attrs, netfilter.Attribute{Type: ctaMark, Data: binary.BigEndian.AppendUint32(nil, f.Mark)},
			netfilter.Attribute{Type: ctaMarkMask, Data: binary.BigEndian.AppendUint32(nil, f.Mask)})
	}
	req, err := netfilter.MarshalNetlink(netfilter.Header{SubsystemID: netfilter.NFSubsysCTNetlink, MessageType: ctMsgNew,
		Family: fam, Flags: netlink.Request | netlink.Acknowledge}, attrs)
	if err != nil {
		return err
	}
	if _, err := s.c.Query(req); err != nil {
		return fmt.Errorf("conntrack update %v: %w", tu, err)
	}
	return nil
}
