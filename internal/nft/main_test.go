package nft

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// TestMain runs the tests in a sandbox of their own (sandbox.RunTests) and
// checks that they left its host's ruleset exactly as they found it: every
// table in this package is made in throw-away namespaces.
func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(func() int {
		before, snap := hostRuleset()
		code := m.Run()
		if snap {
			if after, _ := hostRuleset(); after != before {
				fmt.Fprintf(os.Stderr, "host ruleset changed during the tests\n--- before\n%s--- after\n%s", before, after)
				code = 1
			}
		}
		return code
	}, false))
}

// hostRuleset returns `nft list ruleset` plus `iptables-save`/`ip6tables-save`
// where installed, counters dropped (host traffic moves them).
func hostRuleset() (string, bool) {
	if os.Geteuid() != 0 {
		return "", false
	}
	var b strings.Builder
	for _, argv := range [][]string{{"nft", "-s", "list", "ruleset"}, {"iptables-save"}, {"ip6tables-save"}} {
		if _, err := exec.LookPath(argv[0]); err != nil {
			continue
		}
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		fmt.Fprintf(&b, "## %s (err %v)\n", strings.Join(argv, " "), err)
		for _, l := range strings.SplitAfter(string(out), "\n") {
			if !strings.HasPrefix(l, "#") { // iptables-save timestamps
				b.WriteString(l)
			}
		}
	}
	return b.String(), true
}

// TestHostRulesetSnapshot makes the host check visible in the test list; the
// comparison itself runs in TestMain after every test.
func TestHostRulesetSnapshot(t *testing.T) {
	requireRoot(t)
	if _, ok := hostRuleset(); !ok {
		t.Fatal("no snapshot")
	}
}

// requireRoot: see testkit.RequireRoot.
func requireRoot(t *testing.T) { t.Helper(); testkit.RequireRoot(t, "namespaces, nftables") }

// newNS creates a throw-away namespace "nln<hex>" deleted when the test ends.
func newNS(t *testing.T) string {
	t.Helper()
	name := testkit.Name(t, "nln", 6)
	if err := namespace.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := namespace.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// run is testkit.Run.
func run(t *testing.T, argv ...string) string { t.Helper(); return testkit.Run(t, argv...) }

// nft runs `nft -f -` with script inside the namespace.
func nft(t *testing.T, ns, script string) string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ns %s: nft -f - <<%q: %v\n%s", ns, script, err, out)
	}
	return string(out)
}

func nftList(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", ns, "nft", "list"}, args...)...)
}
