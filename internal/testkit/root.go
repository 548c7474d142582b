// Package testkit is what the project's tests share, in one place: the rule
// for tests that need root (skipped on a laptop without it, failed under
// NETLAB_E2E=1, so CI can never pass by skipping), golden files and their
// -update flag, random names that keep test objects apart from a user's,
// and the host fingerprint that proves a test left the machine as it found
// it (host.go). Only tests import it: it registers the -update flag.
package testkit

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequireRoot skips t without root or without one of the tools, or fails it
// under NETLAB_E2E=1. why says what the test needs root for.
func RequireRoot(t testing.TB, why string, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root ("+why+")")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		SkipOrFail(t, "needs "+strings.Join(missing, ", "))
	}
}

// SkipOrFail skips a test this machine cannot run, or fails it under
// NETLAB_E2E=1, where skipping is not allowed.
func SkipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("NETLAB_E2E") == "1" {
		t.Fatal(why + "; NETLAB_E2E=1 makes this a failure")
	}
	t.Skip(why + "; set NETLAB_E2E=1 to make this a failure")
}

var update = flag.Bool("update", false, "rewrite the golden files from what the tests produce")

// Updating says whether the test binary runs with -update.
func Updating() bool { return *update }

// Golden compares got with the golden file at path; with -update it writes
// got there instead.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs (go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// Run runs a command and returns its output (stdout and stderr), failing the
// test when it fails.
func Run(t testing.TB, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// Name is prefix and n random hex digits: a name for a test's objects that
// no user's lab and no other test has.
func Name(t testing.TB, prefix string, n int) string {
	t.Helper()
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)[:n]
}
