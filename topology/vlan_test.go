package topology

import (
	"slices"
	"testing"
)

// VLANs, internal ports and controllers as the file gives them.
func TestVLANPortsAndControllers(t *testing.T) {
	lab, err := Parse("v.yaml", []byte(`
name: v
bridges:
  br0:
    fail-mode: secure
    controller: [tcp:127.0.0.1:6653, "ptcp:6654:127.0.0.1"]
    ports:
      p1: {ofport: 1, vlan: {trunks: [30, 20]}}
      p2: {vlan: {tag: 20}}
      p3: {vlan: {mode: native-untagged, tag: 10, trunks: [20]}}
      int0: {type: internal, ofport: 9, vlan: {mode: access, tag: 30}}
      p4: {vlan: {mode: trunk}}
  lb:
    type: linux
    vlan-filtering: true
    ports:
      l1: {vlan: {tag: 20}}
      l2: {vlan: {trunks: [20, 30]}}
namespaces:
  a:
    interfaces:
      e1: {peer: br0/p1}
      e2: {peer: br0/p2}
      e3: {peer: br0/p3}
      e4: {peer: br0/p4}
      f1: {peer: lb/l1}
      f2: {peer: lb/l2}
`))
	if err != nil {
		t.Fatal(err)
	}
	br := lab.Bridge("br0")
	var got []string
	for _, p := range br.Ports {
		got = append(got, p.Name+":"+p.VLAN.String())
		if p.Internal != (p.Name == "int0") {
			t.Errorf("port %s: Internal %v", p.Name, p.Internal)
		}
	}
	want := []string{"p1:trunk 20,30", "p2:access 20", "p3:native-untagged 10 trunk 20", "p4:trunk all", "int0:access 30"}
	if !slices.Equal(got, want) {
		t.Errorf("ports %q, want %q", got, want)
	}
	if p := br.Ports[4]; p.OFPort != 9 || p.Peer != (End{}) {
		t.Errorf("internal port %+v", p)
	}
	var targets []string
	for _, c := range br.Controllers {
		targets = append(targets, c.Target)
	}
	if !slices.Equal(targets, []string{"tcp:127.0.0.1:6653", "ptcp:6654:127.0.0.1"}) {
		t.Errorf("controllers %q", targets)
	}
	lb := lab.Bridge("lb")
	if !lb.VLANFiltering || lb.Ports[0].VLAN.String() != "access 20" || lb.Ports[1].VLAN.String() != "trunk 20,30" {
		t.Errorf("linux bridge: filtering %v, ports %v %v", lb.VLANFiltering, lb.Ports[0].VLAN, lb.Ports[1].VLAN)
	}
}
