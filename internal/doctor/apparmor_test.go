package doctor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/sandbox"
)

// TestAppArmorFindings: doctor tells the truth for each case — no
// restriction (nothing to do), the restriction with netlab's profile
// loaded (works), without it (the one command that fixes it, or the
// binary the installed profile is for), user namespaces off for users
// (root only) — and says how go test binaries get their sandbox.
func TestAppArmorFindings(t *testing.T) {
	const exe = "/usr/local/bin/netlab"
	refused := errors.New("sandbox: set up a user namespace with network, mount and PID namespaces: mount --make-rslave /: operation not permitted")
	restricted := sandbox.AppArmor{Enabled: true, Restricted: true, Label: "unconfined"}
	profiled := sandbox.AppArmor{Enabled: true, Restricted: true, Label: "netlab (unconfined)"}
	for _, c := range []struct {
		name   string
		f      apparmorFacts
		aa     Level
		aaWant []string
		gt     Level
		gtWant []string
	}{
		{"no AppArmor", apparmorFacts{exe: exe, euid: 1000},
			OK, []string{"not active", "no profile needed"}, OK, []string{"make their own sandbox", "NETLAB_TEST_DELEGATE=1"}},
		{"AppArmor, no restriction", apparmorFacts{state: sandbox.AppArmor{Enabled: true, Label: "unconfined"}, exe: exe, euid: 1000},
			OK, []string{"does not restrict user namespaces"}, OK, []string{"make their own sandbox"}},
		{"restricted, profile loaded, delegates to this netlab", apparmorFacts{state: profiled, exe: exe, euid: 1000, attach: exe, delegate: exe, same: true},
			OK, []string{"runs under its profile netlab", "nothing to do"}, OK, []string{"netlabtest.Main runs them in one made by " + exe, "which can", "no sysctl"}},
		{"restricted, no profile", apparmorFacts{state: restricted, exe: exe, euid: 1000, probe: refused, delegate: exe, same: true},
			Fatal, []string{"runs without netlab's AppArmor profile", "no capabilities"}, Warn, []string{"cannot make one either"}},
		{"restricted, profile for another binary", apparmorFacts{state: restricted, exe: "/home/u/go/bin/netlab", euid: 1000, probe: refused, attach: exe},
			Fatal, []string{"/home/u/go/bin/netlab runs without"}, Warn, []string{"finds none in NETLAB_BIN or on PATH"}},
		{"restricted, profile there but not loaded", apparmorFacts{state: restricted, exe: exe, euid: 1000, probe: refused, attach: exe},
			Fatal, []string{"runs without"}, Warn, []string{"finds none"}},
		{"restricted, delegate is another netlab", apparmorFacts{state: profiled, exe: "/opt/netlab/bin/netlab", euid: 1000, delegate: exe},
			OK, []string{"nothing to do"}, Warn, []string{"made by " + exe + " (NETLAB_BIN or PATH), not this netlab", exe + " doctor"}},
		{"root under the restriction", apparmorFacts{state: restricted, exe: exe, euid: 0},
			OK, []string{"root's sandboxes need no user namespace"}, OK, []string{"as root"}},
		{"user namespaces off for users", apparmorFacts{state: restricted, settings: map[string]string{"user.max_user_namespaces": "0"}, exe: exe, euid: 1000, probe: refused, delegate: exe, same: true},
			Fatal, []string{"runs without"}, Warn, []string{"user.max_user_namespaces=0", "only root runs the tests", "netlab neither"}},
		{"the Debian switch off", apparmorFacts{settings: map[string]string{"kernel.unprivileged_userns_clone": "0"}, exe: exe, euid: 1000, probe: refused},
			OK, []string{"not active"}, Warn, []string{"kernel.unprivileged_userns_clone=0", "only root"}},
	} {
		fs := apparmorFindings(c.f)
		if len(fs) != 2 || fs[0].Check != "AppArmor" || fs[1].Check != "go test (netlabtest.Main)" {
			t.Fatalf("%s: findings %+v", c.name, fs)
		}
		for i, want := range []struct {
			level Level
			says  []string
		}{{c.aa, c.aaWant}, {c.gt, c.gtWant}} {
			f := fs[i]
			text := f.What + " fix: " + f.Fix
			if f.Level != want.level {
				t.Errorf("%s: %s is %s, want %s: %s", c.name, f.Check, f.Level, want.level, text)
			}
			for _, s := range want.says {
				if !strings.Contains(text, s) {
					t.Errorf("%s: %s lacks %q: %s", c.name, f.Check, s, text)
				}
			}
			if strings.Contains(text, "apparmor_restrict_unprivileged_userns=0") {
				t.Errorf("%s: %s advises turning the restriction off: %s", c.name, f.Check, text)
			}
		}
	}
	// The fix without the profile is the one command; a profile that names
	// this binary but is not loaded is loaded; one for another binary
	// names that binary.
	fixes := map[string]string{
		"":                       "sudo make install",
		exe:                      "sudo apparmor_parser -r /etc/apparmor.d/netlab",
		"/opt/netlab/bin/netlab": "the profile in /etc/apparmor.d/netlab is for /opt/netlab/bin/netlab",
	}
	for attach, want := range fixes {
		f := apparmorFindings(apparmorFacts{state: restricted, exe: exe, euid: 1000, probe: refused, attach: attach})[0]
		if !strings.Contains(f.Fix, want) {
			t.Errorf("profile for %q: fix %q, want %q", attach, f.Fix, want)
		}
	}
}

// The attachment is read from the profile as make install writes it.
func TestProfileAttachment(t *testing.T) {
	b, err := os.ReadFile("../../packaging/apparmor/netlab")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "netlab")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := profileAttachment(path); got != "/usr/local/bin/netlab" {
		t.Errorf("attachment %q", got)
	}
	if got := profileAttachment(filepath.Join(t.TempDir(), "none")); got != "" {
		t.Errorf("no profile: attachment %q", got)
	}
}
