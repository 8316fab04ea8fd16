package pcapreplay

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"
)

// TestCompareReordered: a golden capture with a packet moved a few places
// within its direction matches with CompareReordered (and the move is
// counted) but not with Compare; a changed byte, or a move further than
// the window, is a difference for both.
func TestCompareReordered(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "testdata", "kernel", "snat-port")
	golden := readFile(t, filepath.Join(dir, "golden.pcap"))
	inside := configFromArgs(t, filepath.Join(dir, "args")).Inside
	// indexes of the packets towards the outside
	var out []int
	for i := range golden {
		if d, ok := dstAddr(golden[i].IP()); ok && !inside[0].Contains(d) {
			out = append(out, i)
		}
	}
	if len(out) < 12 {
		t.Fatalf("%d packets towards the outside", len(out))
	}
	move := func(from, to int) []Packet {
		g := slices.Clone(golden)
		p := g[out[from]]
		// shift the packets between one place back, then put p at to
		for k := from; k < to; k++ {
			g[out[k]] = g[out[k+1]]
		}
		g[out[to]] = p
		return g
	}
	if d := Compare(golden, golden, inside, 0); len(d) != 0 {
		t.Fatalf("a capture differs from itself: %v", d)
	}
	near := move(2, 5)
	if d := Compare(golden, near, inside, 0); len(d) == 0 {
		t.Fatal("Compare accepted a reordered capture")
	}
	if d, moved := CompareReordered(golden, near, inside, 0, 8); len(d) != 0 || moved == 0 {
		t.Fatalf("a move by 3 places: %d differences, %d moved", len(d), moved)
	}
	if d, _ := CompareReordered(golden, move(0, 11), inside, 0, 8); len(d) == 0 {
		t.Fatal("a move by 11 places was accepted with a window of 8")
	}
	changed := slices.Clone(near)
	ip := bytes.Clone(changed[out[7]].Data)
	ip[len(ip)-1] ^= 1
	changed[out[7]].Data = ip
	if d, _ := CompareReordered(golden, changed, inside, 0, 8); len(d) == 0 {
		t.Fatal("a changed byte was accepted")
	}
}
