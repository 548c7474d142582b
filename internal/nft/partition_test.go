package nft

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
)

// addrVeth gives the veth pair of newVethNS addresses in both families:
// v0 10.77.0.1 and fd00:77::1, v1 (in ns+"p") .2 and ::2.
func addrVeth(t *testing.T, ns string) {
	t.Helper()
	for _, c := range [][]string{
		{"-n", ns, "addr", "add", "10.77.0.1/24", "dev", "v0"},
		{"-n", ns, "addr", "add", "fd00:77::1/64", "dev", "v0", "nodad"},
		{"-n", ns + "p", "addr", "add", "10.77.0.2/24", "dev", "v1"},
		{"-n", ns + "p", "addr", "add", "fd00:77::2/64", "dev", "v1", "nodad"},
	} {
		run(t, append([]string{"ip"}, c...)...)
	}
}

func pings(t *testing.T, ns, addr string) bool {
	t.Helper()
	return exec.Command("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", addr).Run() == nil
}

// The partition tables drop, on input, the packets from the sources given,
// in both families; a second Ensure with the same sources sends nothing;
// a source removed is let through again; Delete removes both tables.
func TestPartitionTables(t *testing.T) {
	ns := newVethNS(t)
	addrVeth(t, ns)
	peer := ns + "p"
	for _, a := range []string{"10.77.0.1", "fd00:77::1"} {
		if !pings(t, peer, a) {
			t.Fatalf("no ping %s from %s before the partition", a, peer)
		}
	}
	from := []netip.Addr{netip.MustParseAddr("fd00:77::2"), netip.MustParseAddr("10.77.0.2")}
	if changed, err := EnsurePartition(ns, "lab-x", from); err != nil || !changed {
		t.Fatalf("EnsurePartition: changed=%v err=%v", changed, err)
	}
	for fam, want := range map[string]string{"ip": "ip saddr 10.77.0.2 counter packets", "ip6": "ip6 saddr fd00:77::2 counter packets"} {
		out := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", fam, "netlab_lab_x")
		for _, w := range []string{"chain partition {", "type filter hook input priority filter; policy accept;", want} {
			if !strings.Contains(out, w) {
				t.Errorf("table %s (want %q):\n%s", fam, w, out)
			}
		}
	}
	for _, a := range []string{"10.77.0.1", "fd00:77::1"} {
		if pings(t, peer, a) {
			t.Errorf("ping %s from %s went through the partition", a, peer)
		}
	}
	pt, err := ObservePartition(ns, "lab-x")
	if err != nil || pt == nil || pt.Foreign {
		t.Fatalf("observed %+v, %v", pt, err)
	}
	if got := pt.Sources(); !slices.Equal(got, byFamily(from)) {
		t.Errorf("observed sources %v, want %v", got, byFamily(from))
	}
	for _, d := range pt.Drop {
		if d.Packets == 0 {
			t.Errorf("rule of %s counted nothing: %+v", d.From, pt.Drop)
		}
	}
	if changed, err := EnsurePartition(ns, "lab-x", from); err != nil || changed {
		t.Fatalf("second EnsurePartition: changed=%v err=%v, want false", changed, err)
	}
	// The IPv6 source let through: its table goes, the IPv4 one stays.
	if changed, err := EnsurePartition(ns, "lab-x", from[1:]); err != nil || !changed {
		t.Fatalf("EnsurePartition of IPv4 alone: changed=%v err=%v", changed, err)
	}
	if tables := run(t, "ip", "netns", "exec", ns, "nft", "list", "tables"); strings.Contains(tables, "ip6 netlab_lab_x") || !strings.Contains(tables, "ip netlab_lab_x") {
		t.Errorf("tables after dropping the IPv6 source:\n%s", tables)
	}
	if !pings(t, peer, "fd00:77::1") || pings(t, peer, "10.77.0.1") {
		t.Errorf("after dropping the IPv6 source, IPv6 must pass and IPv4 not")
	}
	for range 2 {
		if err := DeletePartition(ns, "lab-x"); err != nil {
			t.Fatal(err)
		}
	}
	if pt, err := ObservePartition(ns, "lab-x"); err != nil || pt != nil {
		t.Fatalf("after delete: %+v, %v", pt, err)
	}
	if !pings(t, peer, "10.77.0.1") {
		t.Errorf("no ping after the tables were deleted")
	}
	// Only netlab's table was ever there, and never another.
	if rs := nftList(t, ns, "ruleset"); strings.TrimSpace(rs) != "" {
		t.Errorf("ruleset left:\n%s", rs)
	}
}

// A table made from the text of plan's set-partition action reads as the
// driver's own; anything else in it makes it foreign, and Ensure replaces
// it.
func TestPartitionTextAndForeign(t *testing.T) {
	ns := newVethNS(t)
	tn := state.NFTTable("part-text")
	text := "add table ip " + tn + "\n" +
		"add chain ip " + tn + " partition { type filter hook input priority filter; }\n" +
		"add rule ip " + tn + " partition ip saddr 10.77.0.2 counter drop\n" +
		"add table ip6 " + tn + "\n" +
		"add chain ip6 " + tn + " partition { type filter hook input priority filter; }\n" +
		"add rule ip6 " + tn + " partition ip6 saddr fd00:77::2 counter drop\n"
	nft(t, ns, text)
	want := []netip.Addr{netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("fd00:77::2")}
	if changed, err := EnsurePartition(ns, "part-text", want); err != nil || changed {
		t.Fatalf("EnsurePartition over the nft-made tables: changed=%v err=%v, want false\n%s", changed, err, nftList(t, ns, "ruleset"))
	}
	for name, script := range map[string]string{
		"extra rule":  "add rule ip " + tn + " partition counter",
		"accept":      "add rule ip " + tn + " partition ip saddr 10.77.0.3 counter accept",
		"daddr":       "add rule ip " + tn + " partition ip daddr 10.77.0.3 counter drop",
		"extra chain": "add chain ip6 " + tn + " other",
		"output hook": "delete chain ip " + tn + " partition\nadd chain ip " + tn + " partition { type filter hook output priority filter; }",
	} {
		t.Run(name, func(t *testing.T) {
			if err := DeletePartition(ns, "part-text"); err != nil {
				t.Fatal(err)
			}
			nft(t, ns, text+script+"\n")
			pt, err := ObservePartition(ns, "part-text")
			if err != nil || pt == nil || !pt.Foreign {
				t.Fatalf("observed %+v, %v; want foreign\n%s", pt, err, nftList(t, ns, "ruleset"))
			}
			if changed, err := EnsurePartition(ns, "part-text", want); err != nil || !changed {
				t.Fatalf("EnsurePartition: changed=%v err=%v", changed, err)
			}
			if pt, err := ObservePartition(ns, "part-text"); err != nil || pt.Foreign || !slices.Equal(pt.Sources(), want) {
				t.Fatalf("after Ensure: %+v, %v", pt, err)
			}
		})
	}
	for _, bad := range [][]netip.Addr{{{}}, {netip.MustParseAddr("::ffff:10.0.0.1")}, {want[0], want[0]}} {
		if _, err := EnsurePartition(ns, "part-text", bad); err == nil {
			t.Errorf("EnsurePartition(%v): no error", bad)
		}
	}
}
