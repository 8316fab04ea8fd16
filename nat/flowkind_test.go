package nat

import "testing"

// TestFlowKindTable pins the numbers (saved in state files) and the names
// (shown by natalg flows) of the flow kinds, and checks that every kind in
// the table is complete.
func TestFlowKindTable(t *testing.T) {
	want := map[flowKind]string{
		1: "snat", 2: "forward", 3: "expected", 4: "mapped", 5: "hairpin", 6: "hairpin-bound",
		16: "nat64", 17: "nat64-expected", 18: "nat64-hairpin", 19: "nat64-static",
	}
	for k := range flowKind(255) {
		ki, ok := k.info()
		name, known := want[k]
		if ok != known {
			t.Errorf("kind %d: in the table %v, want %v", k, ok, known)
			continue
		}
		if !ok {
			if k.String() != "unknown" {
				t.Errorf("kind %d: String %q, want unknown", k, k.String())
			}
			continue
		}
		if ki.name != name || k.String() != name {
			t.Errorf("kind %d: name %q, want %q", k, ki.name, name)
		}
		if k.isNAT64() != (k >= 16) {
			t.Errorf("kind %d: isNAT64 %v", k, k.isNAT64())
		}
		if (ki.peers || ki.active) && ki.holds != holdsSource {
			t.Errorf("kind %d: peers or active without holding its source", k)
		}
	}
	if kindSNAT != 1 || kindHairpinBound != 6 || kind64 != 16 || kind64Static != 19 {
		t.Error("flow kinds renumbered: state files would restore the wrong kinds")
	}
}
