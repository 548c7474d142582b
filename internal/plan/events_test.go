package plan

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// Pulling a cable is desired state: the plan sets the interface's peer
// down, and then wants nothing more — not the IPv6 address the kernel
// flushed from the peer, nor the routes through it — so up keeps it and
// status shows no drift. Plugging it back brings the peer up with its
// address and routes. Golden plans of both.
func TestLinkDownPlan(t *testing.T) {
	lab := load(t, "../../labs/blue-red.yaml")
	m := newMachine()
	m.converge(t, lab)

	// The cable of the OVS port veth0: blue's veth1 is its peer.
	m.j.PullCable(topology.Host, "veth0")
	p := m.converge(t, lab)
	golden(t, "link-down.plan", p.String())
	if got, want := p.String(), "ip -n blue link set veth1 down   # the cable of host/veth0 pulled (netlab link)\n"; got != want {
		t.Errorf("plan %q, want %q", got, want)
	}
	veth1 := m.link(t, "blue", "veth1")
	if veth1.Up || len(m.ns(t, "blue").Routes) != 0 || slices.ContainsFunc(veth1.Addrs, func(a netip.Prefix) bool { return a.Addr().Is6() }) {
		t.Fatalf("after link-down: up %v, addresses %v, routes %v", veth1.Up, veth1.Addrs, m.ns(t, "blue").Routes)
	}

	m.j.PlugCable(topology.Host, "veth0")
	full, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := CableOf(lab, topology.Host, "veth0")
	if !ok || c != (Cable{NS: "blue", Link: "veth1"}) {
		t.Fatalf("CableOf(host/veth0) = %+v, %v", c, ok)
	}
	if ev := LinkEvents(full, lab, c); ev.String() != full.String() {
		t.Errorf("netlab link runs\n%s\nof the plan\n%s", ev, full)
	}
	p = m.converge(t, lab)
	golden(t, "link-up.plan", p.String())
	if !strings.HasPrefix(p.String(), "ip -n blue link set veth1 up\n") {
		t.Errorf("plugging the cable back:\n%s", p)
	}
}

// The link-up a plugged cable needs is also what a link set down by hand
// needs, and up repairs it with it; a held link that is made again (its
// peer vanished) is made down.
func TestLinkStateRepair(t *testing.T) {
	lab := parse(t, "two.yaml", twoHosts)
	m := newMachine()
	m.converge(t, lab)
	m.link(t, "a", "eth0").Up = false
	m.ns(t, "a").Routes = nil // the kernel removes them with the link
	if p := m.converge(t, lab); !strings.HasPrefix(p.String(), "ip -n a link set eth0 up\nip -n a route replace default via 10.1.0.254") || p[0].Op() != OpLinkUp {
		t.Errorf("repair of a link set down by hand:\n%s", p)
	}

	// The point-to-point pair b/link - c/link: c's cable holds b's end down.
	m.j.PullCable("c", "link")
	if p := m.converge(t, lab); p.String() != "ip -n b link set link down   # the cable of c/link pulled (netlab link)\n" {
		t.Errorf("pull c/link:\n%s", p)
	}
	m.deleteLink(t, "c", "link") // the pair goes: made again, b's end down
	p := m.converge(t, lab)
	for _, a := range p {
		if s, ok := a.Step.(SetLink); ok && s.NS == "b" && s.Link == "link" && s.Up {
			t.Errorf("a held link made again comes up: %s", a)
		}
	}
	if m.link(t, "b", "link").Up || !m.link(t, "c", "link").Up {
		t.Errorf("made again: b/link up %v, c/link up %v", m.link(t, "b", "link").Up, m.link(t, "c", "link").Up)
	}
	// Both cables of a pair pulled: both ends down; plugging one brings
	// back only its peer.
	m.j.PullCable("b", "link")
	m.converge(t, lab)
	if m.link(t, "b", "link").Up || m.link(t, "c", "link").Up {
		t.Errorf("both pulled: an end is up")
	}
	m.j.PlugCable("c", "link")
	m.converge(t, lab)
	if !m.link(t, "b", "link").Up || m.link(t, "c", "link").Up {
		t.Errorf("c plugged: b/link up %v (want true), c/link up %v (want false)", m.link(t, "b", "link").Up, m.link(t, "c", "link").Up)
	}
}

// Where a cable is pulled: a veth end's peer, a bridge port's namespace
// end and the reverse; across machines the tunnel that stands for the
// link on this machine (itself, when it is the interface named). A TUN,
// a bridge's own interface or an unknown name have no cable.
func TestCableOf(t *testing.T) {
	lab := parse(t, "two.yaml", twoHosts)
	for _, c := range []struct {
		ns, link string
		want     Cable
		ok       bool
	}{
		{"a", "eth0", Cable{NS: topology.Host, Link: "pa"}, true},
		{topology.Host, "pa", Cable{NS: "a", Link: "eth0"}, true},
		{"b", "link", Cable{NS: "c", Link: "link"}, true},
		{"c", "link", Cable{NS: "b", Link: "link"}, true},
		{topology.Host, "br0", Cable{}, false},
		{"a", "nope", Cable{}, false},
	} {
		if got, ok := CableOf(lab, c.ns, c.link); got != c.want || ok != c.ok {
			t.Errorf("CableOf(%s/%s) = %+v, %v; want %+v, %v", c.ns, c.link, got, ok, c.want, c.ok)
		}
	}
	a, b := splitPart(t, "testdata/split.yaml", "a"), splitPart(t, "testdata/split.yaml", "b")
	for _, c := range []struct {
		part     *topology.Lab
		ns, link string
		want     Cable
	}{
		{a, "red", "veth3", Cable{NS: topology.Host, Link: "veth2"}},
		{a, topology.Host, "veth2", Cable{NS: topology.Host, Link: "veth2", Self: true}},
		{b, "red", "veth3", Cable{NS: "red", Link: "veth3", Self: true}},
		{b, topology.Host, "veth2", Cable{NS: "red", Link: "veth3"}},
		{a, "blue2", "p2p", Cable{NS: "blue2", Link: "p2p", Self: true}},
		{b, "blue2", "p2p", Cable{NS: "red", Link: "p2p"}},
		{a, "blue", "veth1", Cable{NS: topology.Host, Link: "veth0"}},
	} {
		if got, ok := CableOf(c.part, c.ns, c.link); !ok || got != c.want {
			t.Errorf("machine %s: CableOf(%s/%s) = %+v, %v; want %+v", c.part.Machine, c.ns, c.link, got, ok, c.want)
		}
	}
	if _, ok := CableOf(b, "blue", "veth1"); ok {
		t.Errorf("machine b has a cable of blue/veth1, a link entirely on machine a")
	}
	tun := parse(t, "tun.yaml", "name: tt\nnamespaces:\n  a:\n    tuns:\n      tun0: {addresses: [10.5.0.1/24]}\n")
	if _, ok := CableOf(tun, "a", "tun0"); ok {
		t.Errorf("a TUN has a cable")
	}
}

const threeOnBridge = `
name: pp
bridges:
  br0: {type: linux}
namespaces:
  a:
    interfaces:
      eth0: {peer: br0/pa, addresses: [10.3.0.1/24, fd00:3::1/64]}
  b:
    interfaces:
      eth0: {peer: br0/pb, addresses: [10.3.0.2/24, fd00:3::2/64]}
  c:
    interfaces:
      eth0: {peer: br0/pc, addresses: [10.3.0.3/24, fd00:3::3/64]}
      x: {peer: d/x, addresses: [10.4.0.1/30]}
  d:
    interfaces:
      x: {addresses: [10.4.0.2/30]}
`

// A partition is desired state too: each namespace of the groups gets
// tables that drop, on input, the other group's addresses (both ways, or
// only A's packets to B one way); healing removes them. Golden plans.
func TestPartitionPlan(t *testing.T) {
	lab := parse(t, "pp.yaml", threeOnBridge)
	m := newMachine()
	m.converge(t, lab)

	m.j.SetPartition(state.Partition{Name: "p1", A: []string{"a"}, B: []string{"c", "b"}})
	p := m.converge(t, lab)
	golden(t, "partition.plan", p.String())
	drops := func(ns string) []string {
		var out []string
		for _, a := range m.ns(t, ns).Partition.Sources() {
			out = append(out, a.String())
		}
		return out
	}
	if got := drops("a"); !slices.Equal(got, []string{"10.3.0.2", "10.3.0.3", "10.4.0.1", "fd00:3::2", "fd00:3::3"}) {
		t.Errorf("a drops %v", got)
	}
	if got := drops("b"); !slices.Equal(got, []string{"10.3.0.1", "fd00:3::1"}) {
		t.Errorf("b drops %v", got)
	}
	if m.ns(t, "d").Partition != nil {
		t.Errorf("d, in neither group, got tables")
	}

	// One way, d's packets to a: only a drops more.
	m.j.SetPartition(state.Partition{Name: "p2", A: []string{"d"}, B: []string{"a"}, OneWay: true})
	p = m.converge(t, lab)
	golden(t, "partition-oneway.plan", p.String())
	if len(p) != 1 || p[0].Step.(SetPartition).NS != "a" || !slices.Contains(drops("a"), "10.4.0.2") || m.ns(t, "d").Partition != nil {
		t.Errorf("one-way d -> a:\n%s", p)
	}

	// Heal p1: b and c lose their tables; a keeps p2's rule.
	m.j.RemovePartition("p1")
	p = m.converge(t, lab)
	golden(t, "partition-heal.plan", p.String())
	if got := drops("a"); !slices.Equal(got, []string{"10.4.0.2"}) || m.ns(t, "b").Partition != nil || m.ns(t, "c").Partition != nil {
		t.Errorf("after healing p1: a drops %v, b %v, c %v", got, m.ns(t, "b").Partition, m.ns(t, "c").Partition)
	}
	full, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: &state.Journal{PartitionNS: m.j.PartitionNS}, Datapath: topology.DatapathNetdev})
	if err != nil {
		t.Fatal(err)
	}
	if ev := PartitionEvents(full); ev.String() != "ip netns exec a nft -f - <<'EOF'\nadd table ip netlab_pp\ndelete table ip netlab_pp\nadd table ip6 netlab_pp\ndelete table ip6 netlab_pp\nEOF\n" {
		t.Errorf("healing p2 runs:\n%s", ev)
	}

	// Tables of the lab's name that netlab did not make are a clash.
	m.j.SetPartition(state.Partition{Name: "p1", A: []string{"a"}, B: []string{"b"}})
	m.j.PartitionNS = nil
	_, err = Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev})
	if err == nil || !strings.Contains(err.Error(), "netlab did not make it") {
		t.Errorf("foreign partition tables: %v", err)
	}
}

// Over machines each part cuts what reaches its own namespaces, telling the
// other machine's namespaces by the file's addresses.
func TestPartitionOverMachines(t *testing.T) {
	parts := []state.Partition{{Name: "p1", A: []string{"blue"}, B: []string{"red"}}}
	a, b := splitPart(t, "testdata/split.yaml", "a"), splitPart(t, "testdata/split.yaml", "b")
	da, db := PartitionDrops(a, parts), PartitionDrops(b, parts)
	if got := da["blue"]; !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.9.0.2")}) || len(da) != 1 {
		t.Errorf("machine a drops %v", da)
	}
	if got := db["red"]; !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.0.0.1")}) || len(db) != 1 {
		t.Errorf("machine b drops %v", db)
	}
}
