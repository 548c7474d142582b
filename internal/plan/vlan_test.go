package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

const kernelVLANs = `
name: kv
bridges:
  lb0:
    type: linux
    vlan-filtering: true
    ports:
      pt: {vlan: {trunks: [20, 30]}}
      pa: {vlan: {tag: 20}}
      pn: {vlan: {mode: native-untagged, tag: 10, trunks: [30]}}
  ob:
    ports:
      oa: {vlan: {tag: 20}}
      oi: {type: internal}
    controller: tcp:127.0.0.1:6653
namespaces:
  t:
    interfaces:
      eth0:
        peer: lb0/pt
        vlans: [{id: 20, addresses: [10.20.0.1/24]}, {id: 30, name: v30}]
  a:
    interfaces:
      eth0: {peer: lb0/pa, addresses: [10.20.0.2/24]}
      eth1: {peer: ob/oa}
  n:
    interfaces:
      eth0: {peer: lb0/pn}
`

// Where the kernel offers VLANs, a Linux bridge's VLANs and VLAN interfaces
// converge (the simulator applies the plan and plans nothing more), each
// port gets exactly its VLANs, drift is one action; where it does not, the
// file is refused at each place, naming the feature.
func TestKernelVLANsConverge(t *testing.T) {
	lab := parse(t, "kv.yaml", kernelVLANs)
	m := newMachine()
	m.snap.VLAN = &state.VLANSupport{BridgeFiltering: true, Interfaces: true}
	p := m.converge(t, lab)
	text := p.String()
	for _, want := range []string{
		"ip link set lb0 type bridge vlan_filtering 1",
		"bridge vlan add dev pt vid 20 && bridge vlan add dev pt vid 30",
		"bridge vlan add dev pa vid 20 pvid untagged",
		"bridge vlan add dev pn vid 10 pvid untagged && bridge vlan add dev pn vid 30",
		"ip -n t link add link eth0 name eth0.20 alias netlab:kv:t/eth0.20 type vlan id 20",
		"ip -n t link add link eth0 name v30 alias netlab:kv:t/v30 type vlan id 30",
		"ip -n t addr replace 10.20.0.1/24 dev eth0.20",
		"ovs-vsctl set-controller ob tcp:127.0.0.1:6653",
		"set Interface oi ofport_request=2 type=internal",
		"set Port oa vlan_mode=access trunks=[] tag=20",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("plan lacks %q:\n%s", want, text)
		}
	}

	// Drift: a port's VLANs changed by hand, a tag cleared, the controller
	// removed: one action each.
	m.snap.Namespaces[topology.Host].Links["pa"].BridgeVLANs = []state.BridgeVLAN{{VID: 1, PVID: true, Untagged: true}}
	m.snap.Bridges["ob"].Ports["oa"].VLAN = nil
	m.snap.Bridges["ob"].Controllers = nil
	p = m.converge(t, lab)
	if len(p) != 3 {
		t.Errorf("drift repaired by %d actions, want 3:\n%s", len(p), p)
	}

	// A VLAN interface on a veth that is made again is made again too.
	delete(m.snap.Namespaces["t"].Links, "eth0")
	p = m.converge(t, lab)
	if !strings.Contains(p.String(), "type vlan id 20") {
		t.Errorf("the VLAN interfaces of a remade veth are not remade:\n%s", p)
	}

	// A kernel without them: refused at each place.
	m = newMachine()
	m.snap.VLAN = &state.VLANSupport{}
	_, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev})
	var fe *topology.FeatureError
	if !errors.As(err, &fe) || len(fe.Errs) != 3 {
		t.Fatalf("plan on a kernel without VLANs: %v", err)
	}
	for i, want := range []string{"kv.yaml:6:5: bridges.lb0.vlan-filtering: VLANs on a Linux bridge need the kernel's bridge VLAN filtering",
		"kv.yaml:21:17: namespaces.t.interfaces.eth0.vlans[0]: VLAN interface eth0.20 needs the kernel's 802.1Q VLAN interfaces",
		"kv.yaml:21:54: namespaces.t.interfaces.eth0.vlans[1]: VLAN interface v30 needs"} {
		if !strings.HasPrefix(fe.Errs[i].Error(), want) {
			t.Errorf("error %d: %v, want %q...", i, fe.Errs[i], want)
		}
	}
}
