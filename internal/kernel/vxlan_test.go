package kernel

import (
	"net/netip"
	"os/exec"
	"slices"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
)

// Two "machines" (namespaces joined by a veth underlay), each with a lab
// namespace whose interface is a VXLAN device made from the machine's
// namespace: the tunnel carries a ping between the lab namespaces, the
// device's socket stays in the machine's namespace, and observe reports
// what was made.
func TestVXLANAcrossMachines(t *testing.T) {
	requireRoot(t)
	ma, mb := newNS(t), newNS(t)
	la, lb := newNS(t), newNS(t)
	must(t, ma.AddVeth("ul", "", mb, "ul", ""))
	for _, m := range []struct {
		n    *NS
		addr string
	}{{ma, "192.0.2.1/24"}, {mb, "192.0.2.2/24"}} {
		must(t, m.n.AddrReplace("ul", netip.MustParsePrefix(m.addr)))
		must(t, m.n.SetUp("ul", true))
	}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	must(t, ma.AddVXLAN("vx0", "netlab:t:a/vx0", state.VXLANConfig{VNI: 4242, Local: a, Dev: "ul", Port: 4789}, la))
	must(t, mb.AddVXLAN("vx0", "netlab:t:b/vx0", state.VXLANConfig{VNI: 4242, Local: b, Port: 4789}, lb))
	must(t, la.SetRemotes("vx0", []netip.Addr{b}))
	must(t, lb.SetRemotes("vx0", []netip.Addr{a}))
	for _, l := range []struct {
		n    *NS
		addr string
	}{{la, "10.9.0.1/24"}, {lb, "10.9.0.2/24"}} {
		must(t, l.n.SetMTU("vx0", 1450))
		must(t, l.n.AddrReplace("vx0", netip.MustParsePrefix(l.addr)))
		must(t, l.n.SetUp("vx0", true))
	}
	if out, err := exec.Command("ip", "netns", "exec", la.Name(), "ping", "-c", "2", "-W", "2", "10.9.0.2").CombinedOutput(); err != nil {
		t.Fatalf("ping through the tunnel: %v\n%s", err, out)
	}
	o := mustLink(t, observe(t, la), "vx0")
	if o.Kind != "vxlan" || o.VXLAN == nil || o.Alias != "netlab:t:a/vx0" || o.MTU != 1450 {
		t.Fatalf("observed %+v", o)
	}
	ul := mustLink(t, observe(t, ma), "ul")
	if v := o.VXLAN; v.VNI != 4242 || v.Local != a || v.Port != 4789 || v.DevIndex != ul.Index || !slices.Equal(v.Remotes, []netip.Addr{b}) || v.TxPackets == 0 || v.RxPackets == 0 {
		t.Errorf("observed vxlan %+v (underlay index %d)", v, ul.Index)
	}
	// Remotes are made exactly what is asked: one more, then one fewer.
	c := netip.MustParseAddr("192.0.2.3")
	must(t, la.SetRemotes("vx0", []netip.Addr{b, c}))
	if got, _ := la.Remotes("vx0"); !slices.Equal(got, []netip.Addr{b, c}) {
		t.Errorf("remotes %v, want %v %v", got, b, c)
	}
	must(t, la.SetRemotes("vx0", []netip.Addr{c}))
	if got, _ := la.Remotes("vx0"); !slices.Equal(got, []netip.Addr{c}) {
		t.Errorf("remotes %v, want %v", got, c)
	}
	// An underlay device that does not exist is an error, and nothing is made.
	if err := ma.AddVXLAN("vx1", "x", state.VXLANConfig{VNI: 1, Local: a, Dev: "nope", Port: 4789}, la); err == nil {
		t.Errorf("AddVXLAN with a missing underlay: no error")
	}
	if _, ok := observe(t, la).Links["vx1"]; ok {
		t.Errorf("vx1 made despite the error")
	}
}
