package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natalg/natalg/nat"
)

func stateTestEngine(t *testing.T) *nat.Engine {
	t.Helper()
	e, err := nat.New(nat.Config{
		Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")},
		Public: []netip.Addr{netip.MustParseAddr("198.19.100.100")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The state file is written atomically with mode 0600, removed once
// loaded; a bad one is moved aside and the daemon starts empty; none at
// all is not an error.
func TestStateFileLifecycle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "natalg.state")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	e := stateTestEngine(t)
	loadStateFile(e, path, log) // no file yet
	pkt := make([]byte, 40, 65535)
	pkt[0], pkt[3], pkt[8], pkt[9] = 0x45, 40, 64, 6
	copy(pkt[12:], []byte{198, 18, 0, 2, 198, 19, 0, 2})
	pkt[20], pkt[21], pkt[23], pkt[32], pkt[33] = 0x9c, 0x40, 80, 0x50, 0x02
	fixChecksums(pkt)
	if v := processOne(e, pkt, time.Now()); v != nat.Accept || e.Table().Len() != 1 {
		t.Fatalf("SYN: %v, %d flows", v, e.Table().Len())
	}
	if err := saveStateFile(e, path, log); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	e2 := stateTestEngine(t)
	loadStateFile(e2, path, log)
	if e2.Table().Len() != 1 || e2.Bindings() != 1 {
		t.Fatalf("restored %d flows, %d bindings", e2.Table().Len(), e2.Bindings())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("loaded state file still there: %v", err)
	}
	// a corrupt file: moved aside, nothing restored
	if err := os.WriteFile(path, []byte("NATALGST garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	e3 := stateTestEngine(t)
	loadStateFile(e3, path, log)
	if e3.Table().Len() != 0 {
		t.Fatal("a corrupt file restored flows")
	}
	if _, err := os.Stat(path + ".bad"); err != nil {
		t.Fatalf("corrupt file not moved aside: %v", err)
	}
	for _, want := range []string{`msg="state: no file, starting empty"`, `msg="state: saved"`, `msg="state: restored"`, "flows=1",
		`level=ERROR msg="state: not loaded, starting empty"`, "not a valid natalg state file"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// a directory that cannot take the file: an error, logged
	if err := saveStateFile(e, filepath.Join(dir, "missing", "natalg.state"), log); err == nil {
		t.Fatal("save into a missing directory succeeded")
	}
}
