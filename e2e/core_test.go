package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// hostRoutesFree fails (or skips, outside CI) when the host already routes a
// prefix the lab puts on the host side: bringing up a second copy would
// disturb a lab the user has up (make demo, then make test).
func hostRoutesFree(t *testing.T, prefixes ...string) {
	t.Helper()
	routes := sh(t, "ip", "route", "show") + sh(t, "ip", "-6", "route", "show")
	for _, p := range prefixes {
		for _, line := range strings.Split(routes, "\n") {
			if strings.HasPrefix(line, p+" ") {
				msg := fmt.Sprintf("the host already routes %s (%s): a lab of yours is up; not disturbing it", p, line)
				testkit.SkipOrFail(t, msg)
			}
		}
	}
}

func privateOVSRunning() bool {
	return exec.Command("pgrep", "-f", "ovs-vswitchd unix:/run/netlab/ovs/db.sock").Run() == nil
}

// TestBlueRed walks the core story on the shipped blue-red lab: up, traffic,
// idempotency, repair after hand edits, file edits, down to an identical host.
func TestBlueRed(t *testing.T) {
	requireRoot(t)
	hostRoutesFree(t, "10.0.0.0/24", "fd00:10::/64")
	before := fingerprint(t)
	ovsBefore := privateOVSRunning()
	p := newPrefix(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "blue-red.yaml", readFile(t, "../labs/blue-red.yaml"))
	blue, red := p+"blue", p+"red"

	out := labUp(t, file, p, "blue-red")
	_ = out
	if !ovsBefore && !privateOVSRunning() {
		t.Errorf("no OVS was running, and netlab did not start its private one")
	}

	t.Run("traffic", func(t *testing.T) {
		ping(t, blue, "10.0.0.2")
		ping(t, red, "10.0.0.1")
		ping(t, blue, "10.0.0.254")
		ping(t, red, "10.0.0.254")
		ping(t, blue, "fd00:10::2")
		ping(t, red, "fd00:10::fe")
		tcp(t, red, blue, "10.0.0.2")
		tcp(t, blue, red, "fd00:10::1")
	})

	t.Run("second up changes nothing", func(t *testing.T) {
		if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "lab "+p+"blue-red: up to date") {
			t.Errorf("second up: %s", got)
		}
		if got := mustNetlab(t, "plan", "--prefix", p, file); !strings.Contains(got, "up to date") {
			t.Errorf("plan after up: %s", got)
		}
		st := mustNetlab(t, "status", p+"blue-red")
		for _, want := range []string{"drift: none", "bridge " + p + "ovsbr0", "10.0.0.1/24", "link/ether", "route default via 10.0.0.254"} {
			if !strings.Contains(st, want) {
				t.Errorf("status lacks %q:\n%s", want, st)
			}
		}
	})

	t.Run("up repairs hand edits", func(t *testing.T) {
		sh(t, "ip", "-n", blue, "link", "del", "veth1")
		sh(t, "ip", "-n", red, "addr", "del", "10.0.0.2/24", "dev", "veth3")
		st := mustNetlab(t, "status", p+"blue-red")
		if !strings.Contains(st, "drift: ") || strings.Contains(st, "drift: none") {
			t.Errorf("status shows no drift after hand edits:\n%s", st)
		}
		plan := mustNetlab(t, "plan", "--prefix", p, file)
		for _, want := range []string{"link add veth1", "addr replace 10.0.0.2/24 dev veth3"} {
			if !strings.Contains(plan, want) {
				t.Errorf("plan lacks %q:\n%s", want, plan)
			}
		}
		mustNetlab(t, "up", "-q", "--prefix", p, file)
		ping(t, blue, "10.0.0.2")
		ping(t, red, "10.0.0.254")
		if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
			t.Errorf("not converged after repair: %s", got)
		}
	})

	t.Run("up follows file edits", func(t *testing.T) {
		edited := strings.NewReplacer(
			"10.0.0.2/24", "10.0.0.3/24", // change an address
			"      - {to: default, via: fd00:10::fe}\n  red:", "  red:", // drop blue's IPv6 default route
			"expect:", `  green:
    interfaces:
      veth5: {peer: ovsbr0/veth4, addresses: [10.0.0.5/24]}
expect:`,
		).Replace(readFile(t, "../labs/blue-red.yaml"))
		writeFile(t, dir, "blue-red.yaml", edited)
		mustNetlab(t, "up", "-q", "--prefix", p, file)
		ping(t, blue, "10.0.0.3")
		ping(t, p+"green", "10.0.0.1")
		noPing(t, blue, "10.0.0.2")
		if a := sh(t, "ip", "-n", red, "-br", "addr", "show", "veth3"); strings.Contains(a, "10.0.0.2/") || !strings.Contains(a, "10.0.0.3/24") {
			t.Errorf("red addresses after edit: %s", a)
		}
		if r := sh(t, "ip", "-n", blue, "-6", "route", "show", "default"); strings.TrimSpace(r) != "" {
			t.Errorf("blue's IPv6 default route still there: %s", r)
		}
		if got := mustNetlab(t, "plan", "--prefix", p, file); !strings.Contains(got, "up to date") {
			t.Errorf("plan after edit: %s", got)
		}
		// And back to the original: green goes away entirely.
		writeFile(t, dir, "blue-red.yaml", readFile(t, "../labs/blue-red.yaml"))
		mustNetlab(t, "up", "-q", "--prefix", p, file)
		if strings.Contains(sh(t, "ip", "netns", "list"), p+"green") {
			t.Errorf("namespace %sgreen still exists", p)
		}
		ping(t, blue, "10.0.0.2")
	})

	t.Run("down", func(t *testing.T) {
		// The dry run says what down will do, and changes nothing.
		up := fingerprint(t)
		dry := mustNetlab(t, "down", "--dry-run", p+"blue-red")
		for _, want := range []string{"lab " + p + "blue-red: down would run:", "del-br " + p + "ovsbr0", "ip netns del " + blue, "ip netns del " + red} {
			if !strings.Contains(dry, want) {
				t.Errorf("down --dry-run lacks %q:\n%s", want, dry)
			}
		}
		var dp struct {
			Lab     string            `json:"lab"`
			Actions []json.RawMessage `json:"actions"`
		}
		if err := json.Unmarshal([]byte(mustNetlab(t, "down", "--dry-run", "--json", p+"blue-red")), &dp); err != nil || dp.Lab != p+"blue-red" || len(dp.Actions) < 4 {
			t.Errorf("down --dry-run --json: %v %+v", err, dp)
		}
		sameHost(t, up)
		out := mustNetlab(t, "down", p+"blue-red")
		if !strings.Contains(out, "lab "+p+"blue-red: down") {
			t.Errorf("down: %s", out)
		}
		sameHost(t, before)
		if !ovsBefore && privateOVSRunning() {
			t.Errorf("netlab's private OVS still runs after its last lab went down")
		}
		out = mustNetlab(t, "down", p+"blue-red")
		if !strings.Contains(out, "lab "+p+"blue-red: not running") {
			t.Errorf("second down: %s", out)
		}
		if out := mustNetlab(t, "down", "--dry-run", p+"blue-red"); !strings.Contains(out, "lab "+p+"blue-red: nothing to remove") {
			t.Errorf("down --dry-run after down: %s", out)
		}
		// Without the file too.
		os.Remove(file)
		if r := netlab(t, "down", p+"blue-red"); r.code != 0 {
			t.Errorf("down without file: exit %d: %s", r.code, r.out)
		}
	})
}

// TestLinuxBridge: the shipped Linux-bridge variant carries ping and TCP
// without OVS.
func TestLinuxBridge(t *testing.T) {
	requireRoot(t)
	hostRoutesFree(t, "10.0.1.0/24", "fd00:11::/64")
	before := fingerprint(t)
	p := newPrefix(t)
	labUp(t, "../labs/blue-red-linux.yaml", p, "blue-red-lx")
	ping(t, p+"blue", "10.0.1.2")
	ping(t, p+"red", "10.0.1.254")
	ping(t, p+"blue", "fd00:11::2")
	tcp(t, p+"red", p+"blue", "10.0.1.2")
	if got := mustNetlab(t, "up", "--prefix", p, "../labs/blue-red-linux.yaml"); !strings.Contains(got, "up to date") {
		t.Errorf("second up: %s", got)
	}
	mustNetlab(t, "down", "--prefix", p, "../labs/blue-red-linux.yaml")
	sameHost(t, before)
}

// TestUnmarkedBridgeAfterKill: a kill between creating a Linux bridge and
// setting its alias (the kernel ignores an alias in the creating request)
// leaves the bridge unmarked. The journal named it before it was made, so
// down removes it, and up repairs it (deletes and makes it again). The kill
// is made exact: up crashes right after the bridge's step, and the test
// takes the alias off, as a kill one request earlier would have left it.
func TestUnmarkedBridgeAfterKill(t *testing.T) {
	requireRoot(t)
	hostRoutesFree(t, "10.0.1.0/24", "fd00:11::/64")
	const file = "../labs/blue-red-linux.yaml"
	before := fingerprint(t)
	p := newPrefix(t)
	lab := p + "blue-red-lx"
	t.Cleanup(func() { netlab(t, "down", lab) })
	step := 0
	for _, line := range strings.Split(mustNetlab(t, "plan", "--prefix", p, file), "\n") {
		if line == "" {
			continue
		}
		step++
		if strings.Contains(line, "type bridge") {
			break
		}
	}
	crashUnmarked := func() {
		t.Helper()
		r := run(t, []string{fmt.Sprintf("NETLAB_CRASH_AFTER=%d", step)}, netlabBin, "up", "-q", "--prefix", p, file)
		if r.code != 99 {
			t.Fatalf("crash after step %d: want exit 99, got %d\n%s", step, r.code, r.out)
		}
		sh(t, "ip", "link", "set", p+"lxbr0", "alias", "")
		if out := sh(t, "ip", "-d", "link", "show", p+"lxbr0"); strings.Contains(out, "alias") {
			t.Fatalf("the bridge kept its alias:\n%s", out)
		}
	}

	crashUnmarked()
	mustNetlab(t, "down", lab)
	sameHost(t, before)

	crashUnmarked()
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	if out := sh(t, "ip", "-d", "link", "show", p+"lxbr0"); !strings.Contains(out, "alias netlab:"+lab) {
		t.Errorf("up did not remake the bridge marked:\n%s", out)
	}
	ping(t, p+"blue", "10.0.1.2")
	mustNetlab(t, "down", lab)
	sameHost(t, before)
}

// TestTwoLabsAtOnce: copies of one file with different prefixes come up
// concurrently, carry traffic, and go down without touching each other.
func TestTwoLabsAtOnce(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	prefixes := []string{newPrefix(t), newPrefix(t)}
	for prefixes[1] == prefixes[0] {
		prefixes[1] = newPrefix(t)
	}
	var wg sync.WaitGroup
	results := make([]result, len(prefixes))
	for i, p := range prefixes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = netlab(t, "up", "-q", "--prefix", p, "testdata/pair.yaml")
		}()
	}
	wg.Wait()
	for i, p := range prefixes {
		t.Cleanup(func() { netlab(t, "down", "--prefix", p, "testdata/pair.yaml") })
		if results[i].code != 0 {
			t.Fatalf("up %s: exit %d\n%s", p, results[i].code, results[i].out)
		}
	}
	for _, p := range prefixes {
		ping(t, p+"a", "192.168.77.2")
		ping(t, p+"b", "192.168.78.1")
	}
	// Down the first: the second still works and is up to date.
	mustNetlab(t, "down", "--prefix", prefixes[0], "testdata/pair.yaml")
	ping(t, prefixes[1]+"a", "192.168.77.2")
	if got := mustNetlab(t, "up", "--prefix", prefixes[1], "testdata/pair.yaml"); !strings.Contains(got, "up to date") {
		t.Errorf("second lab disturbed by the first's down: %s", got)
	}
	mustNetlab(t, "down", "--prefix", prefixes[1], "testdata/pair.yaml")
	sameHost(t, before)
}

// TestSameLabTwiceAtOnce: two `up` of one lab at the same moment serialise on
// the lab's lock and both end converged.
func TestSameLabTwiceAtOnce(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = netlab(t, "up", "--prefix", p, "testdata/pair.yaml")
		}()
	}
	wg.Wait()
	t.Cleanup(func() { netlab(t, "down", "--prefix", p, "testdata/pair.yaml") })
	upToDate := 0
	for _, r := range results {
		if r.code != 0 {
			t.Fatalf("up: exit %d\n%s", r.code, r.out)
		}
		if strings.Contains(r.out, "up to date") {
			upToDate++
		}
	}
	if upToDate != 1 {
		t.Errorf("want exactly one of the two ups to find the lab up to date:\n%s\n---\n%s", results[0].out, results[1].out)
	}
	ping(t, p+"a", "192.168.77.2")
	mustNetlab(t, "down", "--prefix", p, "testdata/pair.yaml")
	sameHost(t, before)
}

// TestKillDuringUpAndDown: kill -9 from outside at random moments during up
// and during down; a final down leaves the host as it was.
func TestKillDuringUpAndDown(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	for i := 0; i < 4; i++ {
		for _, verb := range [][]string{{"up", "-q", "--prefix", p, "testdata/pair.yaml"}, {"down", "--prefix", p, "testdata/pair.yaml"}} {
			cmd := exec.Command(netlabBin, verb...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}
	mustNetlab(t, "down", "--prefix", p, "testdata/pair.yaml")
	sameHost(t, before)
}

// TestForeignObjectsRefused: a namespace and a host interface with the lab's
// names but no marker: up refuses naming each (file:line), down leaves them.
func TestForeignObjectsRefused(t *testing.T) {
	requireRoot(t)
	p := newPrefix(t)
	foreignNS, foreignIf := p+"a", p+"pb"
	sh(t, "ip", "netns", "add", foreignNS)
	t.Cleanup(func() { run(t, nil, "ip", "netns", "del", foreignNS) })
	sh(t, "ip", "link", "add", foreignIf, "type", "veth", "peer", "name", p+"x")
	t.Cleanup(func() { run(t, nil, "ip", "link", "del", foreignIf) })
	before := fingerprint(t)

	r := netlab(t, "up", "--prefix", p, "testdata/pair.yaml")
	if r.code != 2 {
		t.Fatalf("up over foreign objects: want exit 2, got %d\n%s", r.code, r.out)
	}
	if v := netlab(t, "validate", "--prefix", p, "testdata/pair.yaml"); v.code != 2 || !strings.Contains(v.out, "namespace "+foreignNS+" already exists") {
		t.Errorf("validate over foreign objects: exit %d\n%s", v.code, v.out)
	}
	for _, want := range []string{
		"testdata/pair.yaml:8:3: namespaces." + foreignNS + ": namespace " + foreignNS + " already exists and is not netlab's",
		"interface " + foreignIf + " already exists in namespace host and is not netlab's",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("error lacks %q:\n%s", want, r.out)
		}
	}
	sameHost(t, before)
	out := mustNetlab(t, "down", "--prefix", p, "testdata/pair.yaml")
	if !strings.Contains(out, "not running") {
		t.Errorf("down: %s", out)
	}
	sameHost(t, before)
}

// TestBadInputChangesNothing: invalid files exit 2 with file:line:col and
// leave the machine alone, for validate, plan and up.
func TestBadInputChangesNothing(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", `name: bad
namespaces:
  a:
    interfaces:
      eth0: {peer: nowhere/x, addresses: [10.0.0.1/33]}
`)
	for _, verb := range []string{"validate", "plan", "up"} {
		r := netlab(t, verb, bad)
		if r.code != 2 {
			t.Errorf("%s: want exit 2, got %d\n%s", verb, r.code, r.out)
		}
		if !strings.Contains(r.out, filepath.Base(bad)+":5:") {
			t.Errorf("%s: error lacks file:line:\n%s", verb, r.out)
		}
	}
	sameHost(t, before)
}

// TestPrivateOVSStaysForOtherLabs: a lab's down leaves netlab's private
// Open vSwitch running while another lab has a bridge in it (its deletion's
// own transaction sees that bridge left), and the last lab's down stops it.
func TestPrivateOVSStaysForOtherLabs(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	ovsBefore := privateOVSRunning()
	p1, p2 := newPrefix(t), newPrefix(t)
	labUp(t, "testdata/pair.yaml", p1, "pair") // its cleanup's down finds it gone
	labUp(t, "testdata/pair.yaml", p2, "pair")
	out := mustNetlab(t, "down", p1+"pair")
	if strings.Contains(out, "private Open vSwitch") || !privateOVSRunning() {
		t.Fatalf("down of %spair with %spair's bridge left stopped the private OVS:\n%s", p1, p2, out)
	}
	ping(t, p2+"a", "192.168.77.2")
	labs, _ := filepath.Glob("/run/netlab/labs/*")
	out = mustNetlab(t, "down", p2+"pair")
	if !ovsBefore && len(labs) == 1 {
		// No lab but ours was in it: the last down stops it.
		if !strings.Contains(out, "removed private Open vSwitch (no lab uses it)") || privateOVSRunning() {
			t.Errorf("the last lab's down left the private OVS running:\n%s", out)
		}
		sameHost(t, before)
	}
}
