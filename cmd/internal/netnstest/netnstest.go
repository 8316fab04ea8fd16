// Package netnstest holds the helpers of the live tests of natalg's kernel
// front ends: a fresh network namespace for the calling test, and commands
// run in it.
package netnstest

import (
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// Enter moves the test's goroutine, locked to its thread, into a new
// network namespace, and back when the test ends (the namespace goes with
// its last reference). The test skips without root, and fails without it
// under CI, where root tests never skip.
func Enter(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root: this test needs root (network namespaces, nftables)")
		}
		t.Skip("needs root (network namespaces, nftables)")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New() // switches this thread
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = netns.Set(orig)
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
	})
}

// Run runs a command (in the namespace of the calling thread) and returns
// its output; the test fails if the command does.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
}
