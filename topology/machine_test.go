package topology

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

const splitLab = `name: split
machines:
  a: {address: 192.0.2.1, interface: ua}
  b: {address: 192.0.2.2}
host:
  sysctls: {net.ipv4.ip_forward: 1}
bridges:
  ovsbr0: {machine: a, openflow: learning-switch, fail-mode: secure, addresses: [10.0.0.254/24]}
namespaces:
  blue:
    interfaces:
      veth1: {peer: ovsbr0/veth0, addresses: [10.0.0.1/24]}
  red:
    machine: b
    interfaces:
      veth3: {peer: ovsbr0/veth2, addresses: [10.0.0.2/24], mtu: 1400}
      p2p: {peer: blue2/p2p, addresses: [10.9.0.2/30], vni: 4242}
      vh: {peer: host/vh-red}
  blue2:
    interfaces:
      p2p: {addresses: [10.9.0.1/30]}
expect:
  - {from: blue, to: red, ping: true}
  - {from: red, to: blue, ping: true}
  - {from: host, to: 10.0.0.1, ping: true}
`

func mustParse(t *testing.T, text string) *Lab {
	t.Helper()
	lab, err := Parse("split.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return lab
}

func names[T any](xs []T, name func(T) string) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, name(x))
	}
	return out
}

func tunnels(l *Lab) []string {
	return names(l.Tunnels, func(t *Tunnel) string {
		return fmt.Sprintf("%s/%s@%s vni %d %v->%v dev %q mtu %d", t.NS, t.Name, t.Bridge, t.VNI, t.Local, t.Remotes, t.Dev, t.MTU)
	})
}

func TestForMachine(t *testing.T) {
	lab := mustParse(t, splitLab)
	if got := names(lab.Namespaces, func(n *Namespace) string { return n.Name + "@" + n.Machine }); !slices.Equal(got, []string{"blue@a", "red@b", "blue2@a"}) {
		t.Errorf("machines of namespaces: %v", got)
	}
	a, err := ForMachine(lab, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ForMachine(lab, "b")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(a.Namespaces, func(n *Namespace) string { return n.Name }); !slices.Equal(got, []string{"blue", "blue2"}) {
		t.Errorf("a's namespaces: %v", got)
	}
	if got := names(b.Namespaces, func(n *Namespace) string { return n.Name }); !slices.Equal(got, []string{"red"}) {
		t.Errorf("b's namespaces: %v", got)
	}
	if len(a.Bridges) != 1 || len(b.Bridges) != 0 {
		t.Fatalf("bridges: a %d, b %d", len(a.Bridges), len(b.Bridges))
	}
	ports := names(a.Bridges[0].Ports, func(p *Port) string { return fmt.Sprintf("%s:%d:%v", p.Name, p.OFPort, p.Tunnel) })
	if !slices.Equal(ports, []string{"veth0:1:false", "veth2:2:true"}) {
		t.Errorf("a's bridge ports: %v", ports)
	}
	if lab.Bridges[0].Ports[1].Tunnel {
		t.Errorf("ForMachine changed the whole lab's port")
	}
	linkVNI := deriveVNI("split", "link red/veth3|ovsbr0/veth2")
	wantA := []string{
		fmt.Sprintf("host/veth2@ovsbr0 vni %d 192.0.2.1->[192.0.2.2] dev \"ua\" mtu 1400", linkVNI),
		"blue2/p2p@ vni 4242 192.0.2.1->[192.0.2.2] dev \"ua\" mtu 0",
	}
	wantB := []string{
		fmt.Sprintf("red/veth3@ vni %d 192.0.2.2->[192.0.2.1] dev \"\" mtu 1400", linkVNI),
		"red/p2p@ vni 4242 192.0.2.2->[192.0.2.1] dev \"\" mtu 0",
	}
	if got := tunnels(a); !slices.Equal(got, wantA) {
		t.Errorf("a's tunnels:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantA, "\n"))
	}
	if got := tunnels(b); !slices.Equal(got, wantB) {
		t.Errorf("b's tunnels:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantB, "\n"))
	}
	// Local links stay veths: blue's to the bridge on a, red's to the host on b.
	if got := names(a.Links, func(k *Link) string { return k.A.String() + "-" + k.B.String() }); !slices.Equal(got, []string{"blue/veth1-ovsbr0/veth0"}) {
		t.Errorf("a's links: %v", got)
	}
	if got := names(b.Links, func(k *Link) string { return k.A.String() + "-" + k.B.String() }); !slices.Equal(got, []string{"red/vh-host/vh-red"}) {
		t.Errorf("b's links: %v", got)
	}
	// Expectations run where their source is; the host is on every machine.
	if len(a.Expect) != 2 || len(a.Elsewhere) != 1 || len(b.Expect) != 2 || len(b.Elsewhere) != 1 {
		t.Errorf("expectations: a %d here %d elsewhere, b %d here %d elsewhere", len(a.Expect), len(a.Elsewhere), len(b.Expect), len(b.Elsewhere))
	}
	if got := names(b.Remote, func(r RemotePart) string { return r.Kind + " " + r.Name + "@" + r.Machine }); !slices.Equal(got, []string{"namespace blue@a", "namespace blue2@a", "bridge ovsbr0@a"}) {
		t.Errorf("b's remote parts: %v", got)
	}
	if len(a.Host.Sysctls) != 1 || len(b.Host.Sysctls) != 1 {
		t.Errorf("the host's sysctls go to every machine")
	}
	if _, err := ForMachine(lab, "c"); err == nil || !strings.Contains(err.Error(), "no machine c") {
		t.Errorf("ForMachine(c): %v", err)
	}
	one := mustParse(t, "name: one\nnamespaces:\n  x: {}\n")
	if got, err := ForMachine(one, ""); err != nil || got != one {
		t.Errorf("a lab without machines is its own part: %v", err)
	}
}

// A stretched bridge: a bridge on each machine, one mesh port each with the
// other machines as remotes and one VNI for the segment.
func TestForMachineStretched(t *testing.T) {
	lab := mustParse(t, `name: mesh
machines:
  a: {address: "fd00:99::1"}
  b: {address: "fd00:99::2"}
  c: {address: "fd00:99::3"}
bridges:
  br: {type: linux, machines: [a, b, c]}
namespaces:
  na: {machine: a, interfaces: {eth0: {peer: br/pa}}}
  nb: {machine: b, interfaces: {eth0: {peer: br/pb}}}
  nc: {machine: c, interfaces: {eth0: {peer: br/pc}}}
`)
	vni := deriveVNI("mesh", "bridge br")
	for _, m := range []string{"a", "b", "c"} {
		part, err := ForMachine(lab, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(part.Bridges) != 1 || len(part.Tunnels) != 1 {
			t.Fatalf("%s: %d bridges, %d tunnels", m, len(part.Bridges), len(part.Tunnels))
		}
		tn := part.Tunnels[0]
		if tn.Name != meshName("mesh", "br") || tn.VNI != vni || len(tn.Remotes) != 2 || slices.Contains(tn.Remotes, tn.Local) {
			t.Errorf("%s: tunnel %+v", m, tn)
		}
		ports := names(part.Bridges[0].Ports, func(p *Port) string { return fmt.Sprintf("%s:%v", p.Name, p.Tunnel) })
		want := []string{"p" + m + ":false", tn.Name + ":true"}
		if !slices.Equal(ports, want) {
			t.Errorf("%s: ports %v, want %v", m, ports, want)
		}
		if len(part.Links) != 1 {
			t.Errorf("%s: links %d", m, len(part.Links))
		}
	}
}

func TestMachineWithAddress(t *testing.T) {
	lab := mustParse(t, splitLab)
	m, err := lab.MachineWithAddress([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.2")})
	if err != nil || m.Name != "b" {
		t.Errorf("MachineWithAddress: %v, %v", m, err)
	}
	if _, err := lab.MachineWithAddress(nil); err == nil || !strings.Contains(err.Error(), "--machine") {
		t.Errorf("no machine here: %v", err)
	}
	if _, err := lab.MachineWithAddress([]netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}); err == nil {
		t.Errorf("two machines here: no error")
	}
}

// VNIs derive from the lab's name: prefixed copies get others.
func TestDerivedVNIs(t *testing.T) {
	lab := mustParse(t, splitLab)
	before := tunnelVNIs(lab)
	if err := ApplyPrefix(lab, "p1-"); err != nil {
		t.Fatal(err)
	}
	after := tunnelVNIs(lab)
	if before[0].vni == after[0].vni || before[1].vni != 4242 || after[1].vni != 4242 {
		t.Errorf("VNIs before %v after %v", before, after)
	}
	for _, u := range after {
		if u.vni < minVNI || u.vni > maxVNI {
			t.Errorf("VNI %d out of range", u.vni)
		}
	}
}
