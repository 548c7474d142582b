package observe

import (
	"os"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// TestMain runs the tests in a sandbox of their own: every qdisc and table
// here is made in throwaway namespaces of the sandbox.
func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m.Run, false))
}

// run is testkit.Run.
func run(t *testing.T, argv ...string) string { t.Helper(); return testkit.Run(t, argv...) }

func TestProbeImpair(t *testing.T) {
	testkit.RequireRoot(t, "namespaces, tc, nftables")
	sup, err := ProbeImpair()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("support: %+v", sup)
	if !sup.TBF || !sup.NftEgress {
		t.Errorf("tbf and nftables egress are on every kernel netlab supports: %+v", sup)
	}
	if _, err := os.Stat("/proc/config.gz"); err == nil {
		cfg := run(t, "sh", "-c", "zcat /proc/config.gz | grep -E '^CONFIG_NET_SCH_NETEM=' || true")
		if want := strings.TrimSpace(cfg) != ""; sup.Netem != want {
			t.Errorf("probe says netem %v, kernel config %q", sup.Netem, cfg)
		}
	}
}
