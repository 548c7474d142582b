package plan

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// A lab that routes the host's default traffic through itself, as a
// careless file would.
const hostDefault = `
name: hd
bridges:
  br0: {type: linux, addresses: [10.77.0.1/24, fd00:77::1/64]}
namespaces:
  gw:
    interfaces:
      eth0: {peer: br0/pgw, addresses: [10.77.0.2/24, fd00:77::2/64]}
host:
  sysctls: {net.ipv4.ip_forward: 1}
  routes:
    - {to: default, via: 10.77.0.2}
    - {to: default, via: "fd00:77::2"}
    - {to: 198.51.100.0/24, via: 10.77.0.2}
`

func mustRoute(to, via, dev string, metric int) state.Route {
	r := state.Route{To: netip.MustParsePrefix(to), Dev: dev, Metric: metric}
	if via != "" {
		r.Via = netip.MustParseAddr(via)
	}
	return r
}

// The machine's own default routes (both families) are not the lab's: the
// plan refuses the lab's routes to the same destinations at their lines,
// naming the route that is there, and plans nothing.
func TestHostRouteClashesWithMachineRoutes(t *testing.T) {
	lab := parse(t, "hd.yaml", hostDefault)
	m := newMachine()
	host := m.ns(t, topology.Host)
	host.Foreign = []state.ForeignRoute{
		{Route: mustRoute("0.0.0.0/0", "192.168.77.1", "u0", 0), Protocol: "dhcp"},
		{Route: mustRoute("::/0", "fe80::1", "u0", 1024), Protocol: "ra"},
	}
	p, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: "netdev"})
	if p != nil || err == nil {
		t.Fatalf("plan despite the machine's default routes:\n%s", p)
	}
	got := err.Error()
	for _, want := range []string{
		"hd.yaml:12:7: host.routes[0]: the host already has a route to default (0.0.0.0/0) that is not netlab's (default via 192.168.77.1 dev u0 proto dhcp)",
		"hd.yaml:13:7: host.routes[1]: the host already has a route to default (::/0) that is not netlab's (default via fe80::1 dev u0 proto ra metric 1024)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("error lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "198.51.100.0/24") {
		t.Errorf("a destination the machine does not route clashes:\n%s", got)
	}
}

// The kernel's own route of an address on one of the lab's devices is the
// lab's, not the machine's.
func TestHostRouteOnOwnDeviceIsNoClash(t *testing.T) {
	lab := parse(t, "hd.yaml", hostDefault)
	m := newMachine()
	m.converge(t, lab)
	m.ns(t, topology.Host).Foreign = []state.ForeignRoute{{Route: mustRoute("198.51.100.0/24", "", "br0", 0), Protocol: "kernel"}}
	if p, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: "netdev"}); err != nil || len(p) != 0 {
		t.Errorf("plan %v, %v; want up to date", p, err)
	}
}

// Another lab's netlab route (protocol 78, not in this lab's journal, not
// through its devices) is neither replaced nor deleted.
func TestOtherLabsHostRoutes(t *testing.T) {
	lab := parse(t, "hd.yaml", hostDefault)
	m := newMachine()
	m.converge(t, lab)
	if len(m.j.HostRoutes) != 3 {
		t.Fatalf("journal has host routes %v, want the lab's 3", m.j.HostRoutes)
	}
	host := m.ns(t, topology.Host)
	// Not wanted by this lab: must stay.
	theirs := mustRoute("203.0.113.0/24", "10.88.0.2", "zz9", 0)
	host.Routes = append(host.Routes, theirs)
	p, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: "netdev"})
	if err != nil || len(p) != 0 {
		t.Errorf("plan %v, %v; another lab's host route must stay", p, err)
	}
	// To a destination this lab routes: a clash.
	host.Routes = append(host.Routes, mustRoute("198.51.100.0/24", "10.88.0.2", "zz9", 5))
	_, err = Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: "netdev"})
	if err == nil || !strings.Contains(err.Error(), "netlab installed for another lab (198.51.100.0/24 via 10.88.0.2 dev zz9 proto 78 metric 5)") {
		t.Errorf("error %v; want a clash with the other lab's route", err)
	}
}

// Down removes the lab's journaled host routes that do not go with its own
// devices, and no route it did not install.
func TestDownRemovesOnlyOwnHostRoutes(t *testing.T) {
	lab := parse(t, "hd.yaml", hostDefault)
	m := newMachine()
	m.converge(t, lab)
	host := m.ns(t, topology.Host)
	// A journaled route whose device is not the lab's (the route's device
	// changed under it), and a route of the machine's own.
	mine := mustRoute("192.0.2.0/24", "", "eth9", 0)
	m.j.AddHostRoute(mine)
	host.Routes = append(host.Routes, mine, mustRoute("203.0.113.0/24", "", "eth9", 0))
	p, _ := Down(DownInput{Lab: lab.Name, Journal: m.j, Snapshot: m.snap})
	var dels []string
	for _, a := range p {
		if d, ok := a.Step.(DelRoute); ok {
			dels = append(dels, d.Route.String())
		}
	}
	if len(dels) != 1 || dels[0] != "192.0.2.0/24 dev eth9" {
		t.Errorf("down deletes routes %q, want only the lab's 192.0.2.0/24 dev eth9:\n%s", dels, p)
	}
}

// A host sysctl another lab holds at another value is a clash; at the same
// value the lab holds it too, and its down lets go without restoring.
func TestSharedHostSysctl(t *testing.T) {
	lab := load(t, "../../labs/blue-red.yaml")
	m := newMachine()
	m.snap.SysctlHolders = map[string]map[string]string{"net.ipv4.ip_forward": {"nat": "0"}}
	if _, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: "netdev"}); err == nil ||
		!strings.Contains(err.Error(), "host sysctl net.ipv4.ip_forward is held at 0 by lab nat, which is up; this lab wants 1") {
		t.Errorf("error %v; want a clash naming the other lab", err)
	}

	// The other lab set it already: this lab holds it too (a set, though
	// the value is right), and then is up to date.
	m.snap.SysctlHolders["net.ipv4.ip_forward"]["nat"] = "1"
	m.ns(t, topology.Host).Sysctls["net.ipv4.ip_forward"] = "1"
	m.converge(t, lab)
	if _, held := m.j.HostSysctls["net.ipv4.ip_forward"]; !held {
		t.Fatalf("the lab does not hold the sysctl another lab set: %v", m.j.HostSysctls)
	}
	p, _ := Down(DownInput{Lab: lab.Name, Journal: m.j, Snapshot: m.snap})
	text := p.String()
	if !strings.Contains(text, "# net.ipv4.ip_forward stays: lab nat holds it too") {
		t.Errorf("down plan does not keep the shared sysctl:\n%s", text)
	}
	for _, a := range p {
		m.apply(t, a)
	}
	if v := m.ns(t, topology.Host).Sysctls["net.ipv4.ip_forward"]; v != "1" {
		t.Errorf("after down ip_forward = %s; the other lab still needs 1", v)
	}
}
