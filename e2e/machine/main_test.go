// Package machine holds the end-to-end tests that run on the machine itself,
// outside any sandbox, because sandboxes are what they test: an ordinary
// user's labs in their rootless sandbox (run as uid 65534 with no
// capability), root's --sandbox, a lab on the machine and the same file in
// sandboxes at once, and another module's tests run by that user through
// netlabtest.Main. Each compares the machine's fingerprint before and after.
// They need root (to play the user, and to look at the machine); with
// NETLAB_E2E=1 (CI) a test that cannot run fails.
package machine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// netlabBin is the binary under test, built once by TestMain where uid
// 65534 may run it.
var netlabBin string

func TestMain(m *testing.M) {
	// The race detector's runtime sleeps 1 s at every exit, so that the
	// reports of goroutines still running come out: every netlab command a
	// test runs (and the sandbox's init) would pay it. 50 ms still lets
	// them out.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=50")
	}
	dir, err := os.MkdirTemp("", "netlab-machine-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	netlabBin = filepath.Join(dir, "netlab")
	build := exec.Command("go", "build", "-race", "-o", netlabBin, "../../cmd/netlab")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	code := 1
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build netlab:", err)
	} else {
		// Reflectors run as `netlab reflect`: the binary under test.
		os.Setenv("NETLAB_BIN", netlabBin)
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
