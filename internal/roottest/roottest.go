// Package roottest is the one place tests state that they need root: such a
// test is skipped on a developer's laptop without root, but fails under
// NETLAB_E2E=1 (set by CI), so CI can never pass by skipping.
package roottest

import (
	"os"
	"testing"
)

// Require skips t without root, or fails it under NETLAB_E2E=1. why says
// what the test needs root for.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NETLAB_E2E") == "1" {
		t.Fatalf("needs root (%s); NETLAB_E2E=1 forbids skipping", why)
	}
	t.Skipf("needs root (%s); set NETLAB_E2E=1 to make this a failure", why)
}
