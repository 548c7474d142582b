// Package e2e holds netlab's end-to-end tests: they build the netlab binary,
// bring labs up on this machine with real namespaces, Open vSwitch and
// traffic, and check that every lab leaves the host exactly as it found it.
// They need root; with NETLAB_E2E=1 (CI) a test that cannot run fails.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// netlabBin is the binary under test, built once by TestMain.
var netlabBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netlab-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by everyone: TestTapMAC runs it as an unprivileged user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	netlabBin = filepath.Join(dir, "netlab")
	build := exec.Command("go", "build", "-race", "-o", netlabBin, "../cmd/netlab")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build netlab:", err)
		os.Exit(1)
	}
	// Reflectors run as `netlab reflect`: the binary under test.
	os.Setenv("NETLAB_BIN", netlabBin)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
