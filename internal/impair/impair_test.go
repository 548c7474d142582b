package impair

import (
	"os"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/netlab-dev/netlab/internal/namespace"
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

// newNS makes a throwaway namespace with a veth pair v0 (here) and v1 (in
// a second one), both up.
func newNS(t *testing.T) string {
	t.Helper()
	testkit.RequireRoot(t, "namespaces, tc, nftables", "tc", "nft")
	name := testkit.Name(t, "nli", 6)
	for _, n := range []string{name, name + "p"} {
		if err := namespace.Create(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { namespace.Delete(n) })
	}
	run(t, "ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", name+"p")
	run(t, "ip", "-n", name, "link", "set", "v0", "up")
	run(t, "ip", "-n", name+"p", "link", "set", "v1", "up")
	return name
}

func TestLossTable(t *testing.T) {
	ns := newNS(t)
	if err := SetLoss(ns, "lab-x", []LossRule{{Link: "v0", Threshold: 2000}}); err != nil {
		t.Fatal(err)
	}
	out := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", "netdev", "netlab_lab_x")
	for _, want := range []string{`chain loss_v0 {`, `type filter hook egress device "v0" priority filter; policy accept;`, "numgen random mod 10000 < 2000 counter packets"} {
		if !strings.Contains(out, want) {
			t.Errorf("nft says (want %q):\n%s", want, out)
		}
	}
	lt, err := ObserveLoss(ns, "lab-x")
	if err != nil || lt == nil || lt.Foreign || lt.Loss["v0"] != 20 || len(lt.Loss) != 1 {
		t.Fatalf("observed %+v, %v", lt, err)
	}
	// Something added by hand makes it foreign.
	run(t, "ip", "netns", "exec", ns, "nft", "add chain netdev netlab_lab_x extra")
	if lt, err = ObserveLoss(ns, "lab-x"); err != nil || !lt.Foreign {
		t.Fatalf("observed %+v, %v", lt, err)
	}
	if err := SetLoss(ns, "lab-x", []LossRule{{Link: "v0", Threshold: 0}}); err != nil {
		t.Fatal(err)
	}
	if lt, err = ObserveLoss(ns, "lab-x"); err != nil || lt.Foreign || lt.Loss["v0"] != 0 {
		t.Fatalf("after replace: %+v, %v", lt, err)
	}
	for range 2 {
		if err := DeleteLoss(ns, "lab-x"); err != nil {
			t.Fatal(err)
		}
	}
	if lt, err = ObserveLoss(ns, "lab-x"); err != nil || lt != nil {
		t.Fatalf("after delete: %+v, %v", lt, err)
	}
}

func TestProbe(t *testing.T) {
	testkit.RequireRoot(t, "namespaces, tc, nftables")
	sup, err := Probe()
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

func TestDecodeLossRoundTrip(t *testing.T) {
	full := lossExprs(1234)
	if th, ok := decodeLoss(full); !ok || th != 1234 {
		t.Errorf("full: %d %v", th, ok)
	}
	read := append(append([]expr.Any{}, full[0]), full[2:]...) // as the library reads it back
	if th, ok := decodeLoss(read); !ok || th != 1234 {
		t.Errorf("read back: %d %v", th, ok)
	}
	if _, ok := decodeLoss(full[:3]); ok {
		t.Error("a rule without its verdict decoded")
	}
}
