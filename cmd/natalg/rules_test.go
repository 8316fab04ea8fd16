package main

import (
	"strings"
	"testing"
)

// TestRulesHairpin: with --public, natalg rules queues packets from the
// inside interface to each public address (its family's tool only), in raw
// PREROUTING before routing, on the outbound queues, with --queue-bypass;
// without it the hairpin chain queues nothing; a bad address is refused.
func TestRulesHairpin(t *testing.T) {
	code, out, errs := runCmd(t, "rules", "--inside-if", "lan0", "--outside-if", "wan0", "--queues", "4-7",
		"--public", "198.19.100.100", "--public", "2001:db8:19::100")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	v4, v6, ok := strings.Cut(out, "# hairpin, IPv6")
	if !ok {
		t.Fatalf("no IPv6 hairpin section:\n%s", out)
	}
	for _, want := range []string{
		"-A PREROUTING -i lan0 -j NATALG-HP\n",
		"-A NATALG-HP -d 198.19.100.100 -j NFQUEUE --queue-balance 6:7 --queue-bypass\n",
		"accept_local=1",
	} {
		if !strings.Contains(v4, want) {
			t.Errorf("IPv4 rules lack %q:\n%s", want, v4)
		}
	}
	if !strings.Contains(v6, "-A NATALG-HP -d 2001:db8:19::100 -j NFQUEUE --queue-balance 6:7 --queue-bypass\n") || strings.Contains(v6, "198.19.100.100") {
		t.Errorf("IPv6 rules:\n%s", v6)
	}
	if strings.Contains(v4, "2001:db8:19::100") {
		t.Errorf("an IPv6 address in the IPv4 rules:\n%s", v4)
	}
	// The removal names the chain by interface only.
	if got := hairpinRemoveText("lan0"); got != "*raw\n-D PREROUTING -i lan0 -j NATALG-HP\n-F NATALG-HP\n-X NATALG-HP\nCOMMIT\n" {
		t.Errorf("hairpinRemoveText: %q", got)
	}
	_, out, _ = runCmd(t, "rules", "--inside-if", "lan0", "--outside-if", "wan0")
	if strings.Contains(out, "-A NATALG-HP -d") {
		t.Errorf("hairpin rules without --public:\n%s", out)
	}
	if code, _, _ := runCmd(t, "rules", "--inside-if", "lan0", "--outside-if", "wan0", "--public", "fe80::1%lan0"); code != 2 {
		t.Errorf("zoned --public accepted (exit %d)", code)
	}
}
