package nfq

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/natalg/natalg/cmd/internal/netnstest"
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

// TestCTStorePutLive: put stores natalg's mark bits in an existing entry
// under its mask, keeping the operator's other bits, answers ENOENT for a
// tuple with no entry, and allocates nothing.
func TestCTStorePutLive(t *testing.T) {
	netnstest.Enter(t)
	netnstest.Run(t, "conntrack", "-I", "-p", "tcp", "-s", "198.18.0.2", "-d", "198.19.0.2", "--sport", "40000", "--dport", "21",
		"--state", "ESTABLISHED", "--timeout", "120", "--mark", "0x1")
	s, err := openCTStore()
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	tuple := conntrack.Tuple{Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.19.0.2"), SrcPort: 40000, DstPort: 21, Proto: ipproto.TCP}
	f := nat.CTFacts{Tuple: tuple, SetMark: true, Mark: 0x1230000, Mask: 0xffff0000}
	if err := s.put(&f); err != nil {
		t.Fatal(err)
	}
	if out := netnstest.Run(t, "conntrack", "-L", "-p", "tcp", "--sport", "40000"); !strings.Contains(out, "mark=19070977") { // 0x1230001
		t.Errorf("entry after put:\n%s", out)
	}
	if n := testing.AllocsPerRun(10, func() { s.put(&f) }); n != 0 {
		t.Errorf("%v allocations per put, want 0", n)
	}
	none := f
	none.Tuple.SrcPort = 40001
	if err := s.put(&none); !errors.Is(err, unix.ENOENT) {
		t.Errorf("put on a tuple with no entry: %v, want ENOENT", err)
	}
}
