package doctor

import (
	"strings"
	"testing"
)

// TestUsers: doctor recommends sandboxes first; the sudo rule for a group
// names the binary and says what it truly grants (root, through netlab
// exec); file capabilities are called no way to give users the machine.
func TestUsers(t *testing.T) {
	fs := users("/opt/netlab/bin/netlab")
	if len(fs) != 2 || fs[0].Check != "users" || !strings.Contains(fs[0].What, "own sandbox") {
		t.Fatalf("sandboxes are not recommended first: %+v", fs)
	}
	for _, want := range []string{
		"%netlab ALL=(root) /opt/netlab/bin/netlab",
		"writable by root only",
		"sudo netlab exec LAB NS -- CMD runs any command as root",
		"netlab sheds them for every user but root",
	} {
		if !strings.Contains(fs[1].What, want) {
			t.Errorf("the sudo finding lacks %q: %s", want, fs[1].What)
		}
	}
	if fs := users("netlab"); !strings.Contains(fs[1].What, "%netlab ALL=(root) /usr/local/bin/netlab ") {
		t.Errorf("a relative path in a sudo rule: %s", fs[1].What)
	}
	if fs := users(""); !strings.Contains(fs[1].What, "%netlab ALL=(root) /usr/local/bin/netlab ") {
		t.Errorf("no path in a sudo rule: %s", fs[1].What)
	}
}

// TestFileCapabilities: a binary with file capabilities run by a user is
// told they are shed and why, and how to remove them; never to add them.
func TestFileCapabilities(t *testing.T) {
	f := fileCapabilities("/usr/local/bin/netlab")
	for _, want := range []string{"/usr/local/bin/netlab has file capabilities", "sheds them", "every user's labs", "labs of this user live in their sandbox"} {
		if !strings.Contains(f.What, want) {
			t.Errorf("lacks %q: %s", want, f.What)
		}
	}
	if f.Level == Fatal || !strings.HasPrefix(f.Fix, "sudo setcap -r /usr/local/bin/netlab") {
		t.Errorf("level %s, fix %q", f.Level, f.Fix)
	}
}

// TestDumpable: a test binary is dumpable, so doctor leaves a sandbox's
// failure to sandbox.Diagnose.
func TestDumpable(t *testing.T) {
	if !dumpable() {
		t.Error("this test process is not dumpable")
	}
}
