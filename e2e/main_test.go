// Package e2e holds netlab's end-to-end tests: they build the netlab binary,
// bring labs up with real namespaces, Open vSwitch and traffic, and check
// that every lab leaves its host exactly as it found it. The whole test
// binary runs in a sandbox of its own (netlabtest.Main), whose network
// namespace is the labs' host: the tests never meet the machine's labs (a
// user's `make demo`), and run the same without root. They need root or a
// sandbox; with NETLAB_E2E=1 (CI) a test that cannot run fails.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/netlab-dev/netlab/e2e/netlabtest"
)

// netlabBin is the binary under test, built once by TestMain.
var netlabBin string

func TestMain(m *testing.M) {
	// The race detector's runtime sleeps 1 s at every exit, so that the
	// reports of goroutines still running come out: every netlab command a
	// test runs (and the sandbox's init) would pay it. 50 ms still lets
	// them out.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=50")
	}
	// Built outside the sandbox, once: the run inside finds it in
	// NETLAB_BIN, which reflectors use too (`netlab reflect`).
	netlabBin = os.Getenv("NETLAB_BIN")
	built := ""
	if netlabBin == "" {
		dir, err := os.MkdirTemp("", "netlab-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		built = dir
		// Readable by everyone: TestTapMAC runs it as an unprivileged user.
		if err := os.Chmod(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
		netlabBin = filepath.Join(dir, "netlab")
		build := exec.Command("go", "build", "-race", "-o", netlabBin, "../cmd/netlab")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build netlab:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
		os.Setenv("NETLAB_BIN", netlabBin)
	}
	code := netlabtest.Run(m)
	if built != "" {
		os.RemoveAll(built)
	}
	os.Exit(code)
}
