package nfq

import (
	"errors"
	"net/netip"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/conntrack"
	"github.com/natalg/natalg/nat"
	"github.com/natalg/natalg/nat/ipproto"
)

// BenchmarkCTStorePut measures one crash-only store (a ctnetlink update
// round trip; the tuple has no entry, so the kernel answers ENOENT after
// the same lookup an update makes). Root only.
func BenchmarkCTStorePut(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (CAP_NET_ADMIN)")
	}
	s, err := openCTStore()
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	f := nat.CTFacts{Tuple: conntrack.Tuple{Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.19.0.2"),
		SrcPort: 1, DstPort: 2, Proto: ipproto.TCP}, SetMark: true, Mark: 0x100, Mask: nat.DefaultCTMarkMask}
	if err := s.put(&f); !errors.Is(err, unix.ENOENT) {
		b.Fatalf("put on a tuple with no entry: %v, want ENOENT", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.put(&f)
	}
}
