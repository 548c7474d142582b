// Package deps holds the dependency rules of netlab's packages as one table:
// what each package may not depend on, and why. The build's own view of the
// imports (`go list`) is checked against it, so a forbidden import fails
// here with its reason, before review.
package deps

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/netlab-dev/netlab/"

// Reasons, named once: several packages share them.
const (
	pure       = "the file format and the planner decide without touching the machine, so a plan can be printed, golden-tested and simulated anywhere"
	driverOnly = "only a driver speaks to the kernel or Open vSwitch; the engine maps actions to drivers (internal/apply)"
	noPrograms = "it runs no program: what it needs is given to it"
	viaEngine  = "the command talks to labs through the engine; a verb that reached a driver would bypass the lab's lock, journal and markers"
)

// machine are the packages that act on the machine: drivers and the
// libraries under them.
var machine = map[string]string{
	"github.com/vishvananda/netlink":         driverOnly,
	"github.com/vishvananda/netns":           driverOnly,
	"github.com/digitalocean/go-openvswitch": driverOnly,
	"github.com/google/nftables":             driverOnly,
	"golang.org/x/sys/unix":                  driverOnly,
	mod + "internal/kernel":                  driverOnly,
	mod + "internal/namespace":               driverOnly,
	mod + "internal/nft":                     driverOnly,
	mod + "internal/apply":                   driverOnly,
	mod + "internal/supervise":               driverOnly,
	mod + "internal/observe":                 driverOnly,
	mod + "internal/store":                   "the journal's file store writes /run/netlab; the planner is given the journal",
	mod + "ovs":                              driverOnly,
}

// rule: a package (of this module) and what it may not depend on, with the
// reason.
type rule struct {
	pkg string
	// deps may not appear anywhere below pkg (go list -deps).
	deps map[string]string
	// imports may not be imported by pkg's own files (the standard
	// library's packages are below everything: fmt imports os).
	imports map[string]string
}

var rules = []rule{
	{pkg: "topology", deps: with(machine, map[string]string{"os/exec": noPrograms}),
		imports: map[string]string{"syscall": pure, "net/http": pure, "unsafe": pure}},
	{pkg: "internal/state", deps: with(machine, map[string]string{"os/exec": noPrograms}),
		imports: map[string]string{"os": pure + "; the journal's files are internal/store's", "syscall": pure}},
	{pkg: "internal/plan", deps: with(machine, map[string]string{"os/exec": noPrograms}),
		imports: map[string]string{"os": pure, "syscall": pure}},
	// The schedule of a timeline and its log's lines: the runner (engine)
	// sleeps, locks and writes.
	{pkg: "internal/timeline", deps: with(machine, map[string]string{"os/exec": noPrograms}),
		imports: map[string]string{"os": pure, "syscall": pure}},
	{pkg: "internal/openflow", deps: with(machine, map[string]string{"os/exec": noPrograms}),
		imports: map[string]string{"os": pure, "syscall": pure}},
	// graph runs Graphviz's dot for SVG and PNG, but draws from the file or
	// a lab's status: it never reads the machine itself.
	{pkg: "internal/graph", deps: machine},
	// The command's reach past the engine: what it may use besides (and
	// why) is docs/design.md's table — sandboxes, capture, doctor, the
	// reflector's data plane, tap-mac, OVS options; below those everything
	// is there, so the rule is on what it imports itself.
	{pkg: "cmd/netlab", imports: map[string]string{
		"github.com/vishvananda/netlink":         viaEngine,
		"github.com/vishvananda/netns":           viaEngine,
		"github.com/google/nftables":             viaEngine,
		"github.com/digitalocean/go-openvswitch": viaEngine,
		mod + "internal/kernel":                  viaEngine,
		mod + "internal/apply":                   viaEngine,
		mod + "internal/nft":                     viaEngine,
		mod + "internal/store":                   viaEngine,
		mod + "internal/supervise":               viaEngine,
		mod + "internal/observe":                 viaEngine,
	}},
}

func with(base, more map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

func TestDependencyRules(t *testing.T) {
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			pkg := mod + r.pkg
			deps := goList(t, "-deps", pkg)
			if len(deps) < 5 || !slices.Contains(deps, pkg) {
				t.Fatalf("go list -deps %s printed too little to be believed: %q", pkg, deps)
			}
			for _, d := range deps {
				for bad, why := range r.deps {
					if d == bad || strings.HasPrefix(d, bad+"/") {
						t.Errorf("%s depends on %s: %s", r.pkg, d, why)
					}
				}
			}
			for _, imp := range goList(t, "-f", `{{join .Imports " "}}`, pkg) {
				if why, bad := r.imports[imp]; bad {
					t.Errorf("%s imports %s: %s", r.pkg, imp, why)
				}
			}
		})
	}
}

// owners are the libraries one package alone may import (tests included):
// its driver. Every table, bridge or flow netlab touches of that kind is
// then made, read and deleted in one place, under one ownership rule.
var owners = map[string]string{
	"github.com/google/nftables":             mod + "internal/nft",
	"github.com/digitalocean/go-openvswitch": mod + "ovs",
}

func TestOneDriverPerLibrary(t *testing.T) {
	lines := goList(t, "-f", "{{.ImportPath}}{{range .Imports}},{{.}}{{end}}{{range .TestImports}},{{.}}{{end}}{{range .XTestImports}},{{.}}{{end}}", mod+"...")
	if len(lines) < 10 {
		t.Fatalf("go list printed too little to be believed: %q", lines)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		fields := strings.Split(l, ",")
		pkg := fields[0]
		for _, imp := range fields[1:] {
			for lib, owner := range owners {
				if imp != lib && !strings.HasPrefix(imp, lib+"/") {
					continue
				}
				if pkg == owner {
					seen[lib] = true
					continue
				}
				t.Errorf("%s imports %s: that work belongs in %s, its one driver", pkg, imp, owner)
			}
		}
	}
	for lib, owner := range owners {
		if !seen[lib] {
			t.Errorf("go list does not show %s importing %s: the check itself is wrong", owner, lib)
		}
	}
}
