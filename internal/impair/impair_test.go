package impair

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/topology"
	"github.com/vishvananda/netlink"
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

func TestQdiscLifecycle(t *testing.T) {
	ns := newNS(t)
	if err := Set(ns, "v0", &TBF{RateBytes: 2500000, Burst: 25000, Limit: 150000}, nil); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "tc", "-n", ns, "qdisc", "show", "dev", "v0"); !strings.Contains(out, "qdisc tbf 4e4c: root") || !strings.Contains(out, "rate 20Mbit burst 25000b") {
		t.Fatalf("tc says:\n%s", out)
	}
	obs, err := Observe(ns)
	if err != nil {
		t.Fatal(err)
	}
	q := obs["v0"]
	if q == nil || !q.Ours || q.Impair.Rate != 20e6 || q.LimitBytes != 150000 || q.Burst < 24900 || q.Burst > 25100 {
		t.Fatalf("observed %+v", q)
	}
	if obs["lo"] != nil {
		t.Errorf("lo's default qdisc observed: %+v", obs["lo"])
	}
	// In place: a new rate.
	if err := Set(ns, "v0", &TBF{RateBytes: 6250000, Burst: 62500, Limit: 375000}, nil); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "tc", "-n", ns, "qdisc", "show", "dev", "v0"); !strings.Contains(out, "rate 50Mbit") {
		t.Fatalf("tc says:\n%s", out)
	}
	if err := Delete(ns, "v0", 0x4e4c); err != nil {
		t.Fatal(err)
	}
	if err := Delete(ns, "v0", 0x4e4c); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if out := run(t, "tc", "-n", ns, "qdisc", "show", "dev", "v0"); strings.Contains(out, "tbf") {
		t.Fatalf("tbf left:\n%s", out)
	}
}

func TestForeignQdiscUntouched(t *testing.T) {
	ns := newNS(t)
	run(t, "tc", "-n", ns, "qdisc", "add", "dev", "v0", "root", "handle", "1:", "tbf", "rate", "1mbit", "burst", "16kb", "limit", "30kb")
	obs, err := Observe(ns)
	if err != nil {
		t.Fatal(err)
	}
	if q := obs["v0"]; q == nil || q.Ours || q.Kind != "tbf" || q.Handle != 1 {
		t.Fatalf("observed %+v", q)
	}
	if err := Set(ns, "v0", &TBF{RateBytes: 2500000, Burst: 25000, Limit: 150000}, nil); !errors.Is(err, ErrNotOurs) {
		t.Fatalf("set over a foreign qdisc: %v", err)
	}
	if err := Delete(ns, "v0", 0x4e4c); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "tc", "-n", ns, "qdisc", "show", "dev", "v0"); !strings.Contains(out, "qdisc tbf 1: root") || !strings.Contains(out, "rate 1Mbit") {
		t.Fatalf("foreign qdisc touched:\n%s", out)
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

// Netem cannot be made on this project's kernels (no sch_netem), so its
// encoding is checked without the kernel: what netemQdisc sends reads back
// through netemInto as the file wrote it.
func TestNetemRoundTrip(t *testing.T) {
	n := &Netem{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Duplicate: 1, Corrupt: 0.1, Reorder: 25, Limit: 500}
	q := netemQdisc(3, netlink.HANDLE_ROOT, n)
	if q.Attrs().Handle != netlink.MakeHandle(0x4e4d, 0) || q.Limit != 500 {
		t.Fatalf("qdisc %+v", q)
	}
	var im topology.Impair
	netemInto(&im, q)
	want := topology.Impair{Delay: n.Delay, Jitter: n.Jitter, Duplicate: 1, Corrupt: 0.1, Reorder: 25, Limit: 500}
	if im != want {
		t.Errorf("read back %+v, want %+v", im, want)
	}
	// netem's default queue reads as none; under a tbf the limit is the tbf's.
	q = netemQdisc(3, netlink.MakeHandle(0x4e4c, 1), &Netem{Delay: time.Millisecond})
	im = topology.Impair{Rate: 1e6}
	netemInto(&im, q)
	if im.Limit != 0 || im.Delay != time.Millisecond {
		t.Errorf("child read back %+v", im)
	}
}
