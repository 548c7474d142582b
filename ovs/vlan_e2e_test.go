package ovs

import (
	"fmt"
	"os/exec"
	"slices"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
)

// Ports' VLANs, internal ports and controllers against a private Open
// vSwitch: made in the add-port transaction, read back by Observe (over the
// database protocol) as they were set, changed and cleared in place; an
// internal port gets its device from Open vSwitch; controllers are set,
// read with their connection state, and removed.
func TestVLANsInternalPortsControllersE2E(t *testing.T) {
	c := privateClient(t)
	id := randHex(t, 2)
	lab, br := "nltlab"+id, "nlt"+id+"v"
	if err := c.EnsureBridge(BridgeSpec{Name: br, Lab: lab, Datapath: DatapathNetdev, FailMode: FailModeSecure}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteBridge(br, lab) })
	veth, peer, internal := "nlt"+id+"a", "nlt"+id+"b", "nlt"+id+"i"
	run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", veth).Run() })
	run(t, "ip", "link", "set", veth, "up")
	access := &state.PortVLAN{Mode: "access", Tag: 20}
	trunk := &state.PortVLAN{Mode: "trunk", Trunks: []int{20, 30}}
	if err := c.EnsurePorts(br, []PortSpec{
		{Name: veth, OFPort: 1, Lab: lab, VLAN: access},
		{Name: internal, OFPort: 2, Lab: lab, Type: PortTypeInternal, VLAN: trunk},
	}); err != nil {
		t.Fatal(err)
	}
	if err := waitInterface(internal, true, c.timeout); err != nil {
		t.Errorf("internal port's device: %v", err)
	}
	read := func() *state.Bridge {
		t.Helper()
		brs, err := c.Observe()
		if err != nil {
			t.Fatal(err)
		}
		return brs[br]
	}
	b := read()
	if p := b.Ports[veth]; !p.VLAN.Equal(access) {
		t.Errorf("%s: VLAN %v, want %v", veth, p.VLAN, access)
	}
	if p := b.Ports[internal]; !p.VLAN.Equal(trunk) || p.Type != PortTypeInternal || p.OFPort != 2 {
		t.Errorf("%s: %+v VLAN %v, want an internal port on 2 with %v", internal, p, p.VLAN, trunk)
	}

	native := &state.PortVLAN{Mode: "native-untagged", Tag: 10, Trunks: []int{30}}
	if err := c.SetPortVLANs(br, []PortSpec{{Name: veth, VLAN: native}, {Name: internal}}); err != nil {
		t.Fatal(err)
	}
	b = read()
	if p := b.Ports[veth]; !p.VLAN.Equal(native) {
		t.Errorf("%s after the change: %v, want %v", veth, p.VLAN, native)
	}
	if p := b.Ports[internal]; p.VLAN != nil {
		t.Errorf("%s after clearing: %v", internal, p.VLAN)
	}

	targets := []string{"ptcp:0:127.0.0.1", fmt.Sprintf("tcp:127.0.0.1:%d", 1)}
	if err := c.SetControllers(br, targets); err != nil {
		t.Fatal(err)
	}
	b = read()
	slices.Sort(targets)
	if got := state.Targets(b.Controllers); !slices.Equal(got, targets) || b.Controllers[0].Connected {
		t.Errorf("controllers %+v, want %v, none connected", b.Controllers, targets)
	}
	if err := c.SetControllers(br, nil); err != nil {
		t.Fatal(err)
	}
	if got := read().Controllers; len(got) != 0 {
		t.Errorf("controllers after del-controller: %+v", got)
	}
}
