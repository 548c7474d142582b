package kernel

import (
	"errors"
	"slices"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

// The kernel's VLANs, against a real namespace: the probe says what this
// kernel offers, and the driver does exactly that. Where the kernel has
// bridge VLAN filtering, a port's VLANs become exactly the wanted ones (the
// default VLAN 1 gone) and observe reads them back; where it has 8021q, a
// VLAN interface is made, marked, and read with its VLAN and parent. Where it
// lacks them (this project's machines), the driver says the kernel refuses
// (EOPNOTSUPP) and observe reads no VLAN.
func TestKernelVLANs(t *testing.T) {
	requireRoot(t)
	sup := &state.VLANSupport{}
	must(t, namespace.Scratch(func(h netns.NsHandle) error { return ProbeVLAN(h, sup) }))
	t.Logf("this kernel: %+v", sup)
	a, b := newNS(t), newNS(t)
	an, _ := vethPair(t, a, b)
	must(t, a.AddBridge("br0", "netlab:test:"+a.Name()+"/br0", 0))
	must(t, a.SetMaster(an, "br0"))

	err := a.SetVLANFiltering("br0", true)
	if sup.BridgeFiltering {
		must(t, err)
		want := []state.BridgeVLAN{{VID: 20, PVID: true, Untagged: true}, {VID: 30}}
		must(t, a.SetBridgeVLANs(an, want))
		o := observe(t, a)
		if l := mustLink(t, o, "br0"); !l.VLANFiltering {
			t.Errorf("br0 observed without vlan_filtering")
		}
		if got := mustLink(t, o, an).BridgeVLANs; !slices.Equal(got, want) {
			t.Errorf("port VLANs %+v, want %+v", got, want)
		}
	} else if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("SetVLANFiltering on a kernel without it: %v, want EOPNOTSUPP", err)
	}

	err = a.AddVLAN(an+".20", an, 20, "netlab:test:"+a.Name()+"/v")
	if sup.Interfaces {
		must(t, err)
		l := mustLink(t, observe(t, a), an+".20")
		if l.Kind != state.KindVLAN || l.VLANID != 20 || l.VLANParent != an || l.Alias != "netlab:test:"+a.Name()+"/v" {
			t.Errorf("VLAN interface observed as %+v", l)
		}
	} else {
		if !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("AddVLAN on a kernel without 8021q: %v, want EOPNOTSUPP", err)
		}
		if _, ok := observe(t, a).Links[an+".20"]; ok {
			t.Errorf("a VLAN interface exists after a refusal")
		}
	}
}
