package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

const xdpLab = `
name: px
bridges:
  br0: {type: ovs%s}
namespaces:
  a:
    interfaces:
      e0: {peer: br0/pa, addresses: [10.3.0.1/24]%s}
  b:
    interfaces:
      e0: {peer: br0/pb, addresses: [10.3.0.2/24]}
`

func xdp(t *testing.T, bridge, mtuA string) *topology.Lab {
	t.Helper()
	return parse(t, "px.yaml", strings.Replace(strings.Replace(xdpLab, "%s", bridge, 1), "%s", mtuA, 1))
}

// portsOf returns the ports of an OVS port action.
func portsOf(a Action) []Port {
	switch s := a.Step.(type) {
	case AddPorts:
		return s.Ports
	case SetPortType:
		return s.Ports
	case SetOFPort:
		return s.Ports
	case DelPorts:
		return s.Ports
	}
	return nil
}

// portLines are the plan's OVS port actions.
func portLines(p Plan) string {
	var out []string
	for _, a := range p {
		if a.Op() == OpAddPorts || a.Op() == OpSetPortType {
			out = append(out, a.String())
		}
	}
	return strings.Join(out, "\n")
}

// port-type auto: AF_XDP (afxdp-nonpmd) where it works and fits, system
// elsewhere; what the file names is used as is.
func TestPortTypeAuto(t *testing.T) {
	afxdp := func(m *machine) { m.snap.OVS = state.OVSInfo{Running: true, AFXDP: true} }
	for _, tc := range []struct {
		name, bridge, mtuA string
		setup              func(m *machine)
		want               []string // substrings of the port actions, in order
		notWant            string
	}{
		{"AF_XDP works", "", "", afxdp,
			[]string{"add-port br0 pa -- set Interface pa ofport_request=1 type=afxdp-nonpmd", "add-port br0 pb -- set Interface pb ofport_request=2 type=afxdp-nonpmd"}, ""},
		{"no AF_XDP here", "", "", func(m *machine) { m.snap.OVS = state.OVSInfo{Running: true} },
			[]string{"add-port br0 pa -- set Interface pa ofport_request=1 -- "}, "type="},
		{"MTU too large for AF_XDP", "", ", mtu: 9000", afxdp,
			[]string{"set Interface pa ofport_request=1 -- ", "set Interface pb ofport_request=2 type=afxdp-nonpmd"}, ""},
		{"AF_XDP failed before on pb", "", "", func(m *machine) {
			afxdp(m)
			m.j.AFXDPFailed = map[string]string{"pb": "could not open network device pb"}
		}, []string{"set Interface pa ofport_request=1 type=afxdp-nonpmd", "set Interface pb ofport_request=2 -- "}, ""},
		{"kernel datapath", ", datapath: system", "", afxdp, []string{"ofport_request=1 -- "}, "type="},
		{"system by name", ", port-type: system", "", afxdp, []string{"ofport_request=1 -- "}, "type="},
		{"afxdp by name", ", port-type: afxdp", "", afxdp, []string{"ofport_request=1 type=afxdp options:xdp-mode=native --", "ofport_request=2 type=afxdp options:xdp-mode=native --"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine()
			tc.setup(m)
			got := portLines(m.converge(t, xdp(t, tc.bridge, tc.mtuA)))
			containsInOrder(t, got, tc.want)
			if tc.notWant != "" && strings.Contains(got, tc.notWant) {
				t.Errorf("port actions have %q:\n%s", tc.notWant, got)
			}
		})
	}
}

// Changing the type of existing ports: one set-port-type per bridge; a
// change to system comes before the link changes (an MTU above
// topology.AFXDPMaxMTU is refused while the XDP program is attached), a
// change to AF_XDP after them.
func TestPortTypeChanges(t *testing.T) {
	m := newMachine()
	m.snap.OVS = state.OVSInfo{Running: true, AFXDP: true}
	m.converge(t, xdp(t, "", ""))

	p := m.converge(t, xdp(t, "", ", mtu: 9000"))
	want := "ovs-vsctl set Interface pa type=system\nip link set pa mtu 9000 up\nip -n a link set e0 mtu 9000 up\n"
	if p.String() != want {
		t.Errorf("auto, MTU to 9000:\n%s\nwant:\n%s", p, want)
	}
	p = m.converge(t, xdp(t, ", port-type: afxdp", ""))
	if got := portLines(p); got != "ovs-vsctl set Interface pa type=afxdp options:xdp-mode=native -- set Interface pb type=afxdp options:xdp-mode=native" {
		t.Errorf("to afxdp: %s", got)
	}
	p = m.converge(t, xdp(t, ", port-type: system", ""))
	if got := portLines(p); got != "ovs-vsctl set Interface pa type=system -- set Interface pb type=system" {
		t.Errorf("to system: %s", got)
	}
	for _, a := range p {
		for _, port := range portsOf(a) {
			if port.Auto {
				t.Errorf("port-type system marked auto: %+v", a)
			}
		}
	}
	p = m.converge(t, xdp(t, "", ""))
	if len(p) != 1 || p[0].Op() != OpSetPortType || !portsOf(p[0])[0].Auto || portsOf(p[0])[0].Type != topology.PortTypeAFXDPNonPMD {
		t.Errorf("back to auto: %+v", p)
	}
}

// An AF_XDP type named in the file where it cannot work is refused with the
// file's place; auto never is.
func TestPortTypeRefused(t *testing.T) {
	m := newMachine()
	m.snap.OVS = state.OVSInfo{Running: true}
	_, err := Make(Input{Lab: xdp(t, ", port-type: afxdp-nonpmd", ""), Snapshot: m.snap, Datapath: topology.DatapathNetdev})
	if err == nil || !strings.Contains(err.Error(), "px.yaml:4:3: bridges.br0.port-type: afxdp-nonpmd ports do not work here") {
		t.Errorf("no AF_XDP: err = %v", err)
	}
	_, err = Make(Input{Lab: xdp(t, ", port-type: afxdp", ""), Snapshot: m.snap, Datapath: topology.DatapathSystem})
	if err == nil || !strings.Contains(err.Error(), "afxdp ports need the userspace datapath") {
		t.Errorf("kernel datapath: err = %v", err)
	}
	// OVS not running yet (up's first look): no verdict until it runs.
	m.snap.OVS = state.OVSInfo{}
	if _, err := Make(Input{Lab: xdp(t, ", port-type: afxdp", ""), Snapshot: m.snap, Datapath: topology.DatapathNetdev}); err != nil {
		t.Errorf("OVS not running: %v", err)
	}
}

// A bridge of more than topology.AutoAFXDPMaxPorts ports gets system ports
// from auto (each AF_XDP port costs ovs-vswitchd ~73 MB), AF_XDP ones only
// when the file names the type.
func TestPortTypeAutoBigBridge(t *testing.T) {
	lab := func(n int, bridge string) *topology.Lab {
		var b strings.Builder
		fmt.Fprintf(&b, "name: big\nbridges:\n  br0: {type: ovs%s}\nnamespaces:\n", bridge)
		for i := range n {
			fmt.Fprintf(&b, "  h%02d:\n    interfaces:\n      e0: {peer: br0/p%02d}\n", i, i)
		}
		return parse(t, "big.yaml", b.String())
	}
	count := func(p Plan) (afxdp, system int) {
		for _, a := range p {
			if a.Op() != OpAddPorts {
				continue
			}
			for _, port := range portsOf(a) {
				if topology.IsAFXDP(port.Type) {
					afxdp++
				} else {
					system++
				}
			}
		}
		return afxdp, system
	}
	for _, tc := range []struct {
		n             int
		bridge        string
		afxdp, system int
	}{
		{topology.AutoAFXDPMaxPorts, "", topology.AutoAFXDPMaxPorts, 0},
		{topology.AutoAFXDPMaxPorts + 1, "", 0, topology.AutoAFXDPMaxPorts + 1},
		{topology.AutoAFXDPMaxPorts + 1, ", port-type: afxdp-nonpmd", topology.AutoAFXDPMaxPorts + 1, 0},
	} {
		m := newMachine()
		m.snap.OVS = state.OVSInfo{Running: true, AFXDP: true}
		a, s := count(m.converge(t, lab(tc.n, tc.bridge)))
		if a != tc.afxdp || s != tc.system {
			t.Errorf("%d ports%s: %d AF_XDP, %d system; want %d, %d", tc.n, tc.bridge, a, s, tc.afxdp, tc.system)
		}
	}
}

// containsInOrder fails the test unless got holds each of want, in order.
func containsInOrder(t *testing.T, got string, want []string) {
	t.Helper()
	rest := got
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("lacks %q (in order):\n%s", w, got)
		}
		rest = rest[i+len(w):]
	}
}
