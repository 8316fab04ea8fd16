package alg

import "testing"

// TestEventNames checks that every event bit has a name of its own: the
// metrics label of its counter (nat.Stats), so an unnamed or duplicated one
// would hide or merge counters.
func TestEventNames(t *testing.T) {
	seen := map[string]Event{}
	for i := 0; i < NumEvents; i++ {
		ev := Event(1) << i
		if ev&EvAll == 0 {
			t.Fatalf("bit %d below NumEvents is not in EvAll", i)
		}
		name := ev.String()
		if name == "" || name[0] == 'E' || name == "0" {
			t.Errorf("event bit %d has no name (%q)", i, name)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("events %#x and %#x share the name %q", uint32(prev), uint32(ev), name)
		}
		seen[name] = ev
		if ev.Index() != i {
			t.Errorf("Event(1<<%d).Index() = %d", i, ev.Index())
		}
	}
	if EvAll != Event(1)<<NumEvents-1 {
		t.Errorf("EvAll %#x, but %d event names", uint32(EvAll), NumEvents)
	}
	if EvLedgerFull.String() != "ledger_full" || EvRewrite.String() != "rewrite" {
		t.Errorf("names out of bit order: %s, %s", EvRewrite, EvLedgerFull)
	}
	if got, want := (EvHeld | EvMerged).String(), "held|merged"; got != want {
		t.Errorf("set String = %q, want %q", got, want)
	}
	if got, want := (EvRewrite | Event(1)<<31).String(), "rewrite|Event(0x80000000)"; got != want {
		t.Errorf("unknown bit String = %q, want %q", got, want)
	}
}
