package doctor

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/netlab-dev/netlab/internal/sandbox"
)

// profilePath is where make install puts netlab's AppArmor profile
// (packaging/apparmor/netlab).
const profilePath = "/etc/apparmor.d/netlab"

// installFix is the one command that makes netlab's sandboxes work under
// AppArmor's restriction of user namespaces.
const installFix = "sudo make install   (in netlab's source tree: /usr/local/bin/netlab and its AppArmor profile, loaded; PREFIX=DIR for another place)"

// apparmorFacts is what the AppArmor and go test findings are made of, read
// by readAppArmorFacts; apparmorFindings is pure, for tests.
type apparmorFacts struct {
	state    sandbox.AppArmor
	settings map[string]string // sandbox.Settings
	euid     int
	exe      string // this netlab
	// attach is the path the installed profile (profilePath) names, ""
	// when there is none.
	attach string
	// delegate is the netlab the Go fixture would run its tests in (its
	// NETLAB_BIN, or netlab on PATH), "" when there is none; same says it
	// is this very binary.
	delegate string
	same     bool
	// probe is this netlab's attempt at a sandbox (nil: it works).
	probe error
}

func readAppArmorFacts(exe string, probe error) apparmorFacts {
	f := apparmorFacts{state: sandbox.AppArmorState(), settings: sandbox.Settings(), euid: os.Geteuid(), exe: exe, probe: probe}
	f.attach = profileAttachment(profilePath)
	if b := os.Getenv("NETLAB_BIN"); b != "" {
		f.delegate, _ = exec.LookPath(b)
	} else {
		f.delegate, _ = exec.LookPath("netlab")
	}
	if f.delegate != "" && exe != "" {
		a, errA := os.Stat(f.delegate)
		b, errB := os.Stat(exe)
		f.same = errA == nil && errB == nil && os.SameFile(a, b)
	}
	return f
}

// profileAttachment reads the path netlab's profile attaches to: the
// second word of its `profile netlab PATH flags=...` line.
func profileAttachment(path string) string {
	file, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer file.Close()
	s := bufio.NewScanner(file)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) >= 3 && f[0] == "profile" && f[1] == sandbox.ProfileName {
			return f[2]
		}
	}
	return ""
}

// apparmorFindings says whether AppArmor stands between this user and
// sandboxes, and whether netlab's profile is loaded for this binary
// (check "AppArmor"); and how go test binaries using the fixture get their
// sandbox here: on their own, through netlab (they delegate), or only as
// root (check "go test (netlabtest.Main)").
func apparmorFindings(f apparmorFacts) []Finding {
	aa := Finding{Check: "AppArmor"}
	name := f.exe
	if name == "" {
		name = "this netlab"
	}
	switch {
	case !f.state.Restricted && !f.state.Enabled:
		aa.Level, aa.What = OK, "not active: it restricts no user namespace, no profile needed"
	case !f.state.Restricted:
		aa.Level, aa.What = OK, "active, but it does not restrict user namespaces (kernel.apparmor_restrict_unprivileged_userns is not 1): no profile needed"
		if f.state.Profiled() {
			aa.What += fmt.Sprintf("; %s runs under its profile %s anyway", name, sandbox.ProfileName)
		}
	case f.state.Profiled():
		aa.Level, aa.What = OK, fmt.Sprintf("kernel.apparmor_restrict_unprivileged_userns=1, and %s runs under its profile %s (%s), which allows user namespaces: sandboxes work, nothing to do", name, sandbox.ProfileName, f.state.Label)
	case f.euid == 0:
		aa.Level, aa.What = OK, fmt.Sprintf("kernel.apparmor_restrict_unprivileged_userns=1: root's sandboxes need no user namespace; other users' need netlab's profile, which %s runs without", name)
		aa.Fix = installFix
	default:
		aa.Level = Warn
		if f.probe != nil {
			aa.Level = Fatal
		}
		aa.What = fmt.Sprintf("kernel.apparmor_restrict_unprivileged_userns=1, and %s runs without netlab's AppArmor profile (its label: %q): a user namespace it makes has no capabilities, so it makes no sandbox", name, f.state.Label)
		switch {
		case f.attach != "" && f.attach != f.exe:
			aa.Fix = fmt.Sprintf("the profile in %s is for %s: run that netlab (first on PATH), or %s", profilePath, f.attach, installFix)
		case f.attach != "":
			aa.Fix = fmt.Sprintf("the profile in %s names this binary but is not loaded: sudo apparmor_parser -r %s", profilePath, profilePath)
		default:
			aa.Fix = installFix
		}
	}
	return []Finding{aa, goTestFinding(f)}
}

// goTestFinding says how go test binaries that call netlabtest.Main get
// their sandbox here, for this user.
func goTestFinding(f apparmorFacts) Finding {
	g := Finding{Check: "go test (netlabtest.Main)"}
	refused := sandbox.RefusedToUsers(f.settings)
	switch {
	case f.euid == 0:
		g.Level, g.What = OK, "as root, a test binary's sandbox needs no user namespace: it makes its own"
	case refused != "":
		g.Level, g.What = Warn, fmt.Sprintf("%s: no program of this user may make the namespaces of a sandbox, netlab neither, so only root runs the tests (sudo go test, or root in CI)", refused)
		g.Fix = "allow user namespaces: see the sandbox finding"
	case !f.state.Restricted:
		g.Level, g.What = OK, "test binaries make their own sandbox; NETLAB_TEST_DELEGATE=1 has netlab make it (netlab sandbox run)"
	case f.delegate == "":
		g.Level, g.What = Warn, "test binaries may not make their sandbox here (AppArmor: no profile names their path), and netlabtest.Main would run them in one made by netlab (netlab sandbox run), but finds none in NETLAB_BIN or on PATH"
		g.Fix = "put the installed netlab on PATH, or set NETLAB_BIN to it; " + installFix
	case !f.same:
		g.Level, g.What = Warn, fmt.Sprintf("test binaries may not make their sandbox here (AppArmor: no profile names their path); netlabtest.Main runs them in one made by %s (NETLAB_BIN or PATH), not this netlab: `%s doctor` says whether it can", f.delegate, f.delegate)
	case f.probe != nil:
		g.Level, g.What = Warn, fmt.Sprintf("test binaries may not make their sandbox here (AppArmor), and netlabtest.Main would run them in one made by %s (NETLAB_BIN or PATH), which cannot make one either", f.delegate)
		g.Fix = installFix
	default:
		g.Level, g.What = OK, fmt.Sprintf("test binaries may not make their sandbox here (AppArmor: no profile names their path): netlabtest.Main runs them in one made by %s (netlab sandbox run), which can; no sysctl to change", f.delegate)
	}
	return g
}
