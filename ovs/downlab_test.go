package ovs

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
)

// TestStartDeleteLabBridgesE2E: down's first step deletes the lab's bridges
// in one transaction (their devices go once the wait returns), leaves the
// bridges of other labs, and deletes nothing while a port of the lab sits
// on a bridge that is not the lab's.
func TestStartDeleteLabBridgesE2E(t *testing.T) {
	c := privateClient(t)
	id := randHex(t, 2)
	lab, other := "nltlab"+id, "nltother"+id
	b1, b2, ob := "nlt"+id+"d1", "nlt"+id+"d2", "nlt"+id+"do"
	pa, pb := "nlt"+id+"pa", "nlt"+id+"pb"
	run(t, "ip", "link", "add", pa, "type", "veth", "peer", "name", pb)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", pa).Run() })
	for _, b := range []struct{ name, lab string }{{b1, lab}, {b2, lab}, {ob, other}} {
		if err := c.EnsureBridge(BridgeSpec{Name: b.name, Lab: b.lab, Datapath: DatapathNetdev}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.DeleteBridge(b.name, b.lab) })
	}

	// A port of the lab on the other lab's bridge (netlab does not make
	// one; a lab edited by hand might): nothing goes.
	if _, err := c.VSCtl("add-port", ob, pa, "--", "set", "Port", pa, "external_ids:"+state.OVSLabKey+"="+lab); err != nil {
		t.Fatal(err)
	}
	d, ok, err := c.StartDeleteLabBridges(lab)
	names, wait := d.Names, d.Wait
	if err != nil || ok || names != nil || wait != nil {
		t.Fatalf("with a port on another lab's bridge: %v, %v, %v, %v; want nothing deleted, not ok", names, wait != nil, ok, err)
	}
	if brs, err := c.Observe(); err != nil || brs[b1] == nil || brs[b2] == nil {
		t.Fatalf("a bridge went though the lab has a port elsewhere (%v)", err)
	}

	// The port on the lab's own bridge: both of the lab's bridges go.
	if _, err := c.VSCtl("del-port", ob, pa); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsurePorts(b1, []PortSpec{{Name: pa, OFPort: 1, Lab: lab}}); err != nil {
		t.Fatal(err)
	}
	d, ok, err = c.StartDeleteLabBridges(lab)
	names, wait = d.Names, d.Wait
	if err != nil || !ok || !slices.Equal(names, []string{b1, b2}) || wait == nil {
		t.Fatalf("StartDeleteLabBridges = %v, %v, %v, %v; want [%s %s]", names, wait != nil, ok, err, b1, b2)
	}
	if !d.OthersLeft {
		t.Errorf("othersLeft false; the other lab's bridge %s is left", ob)
	}
	brs, err := c.Observe()
	if err != nil || brs[b1] != nil || brs[b2] != nil || brs[ob] == nil {
		t.Errorf("after the deletion the database has %v (%v); want only %s of these", brs, err, ob)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{b1, b2} {
		if linkExists(b) {
			t.Errorf("device %s still there after the wait", b)
		}
	}
	if !linkExists(ob) || !linkExists(pa) {
		t.Errorf("the other lab's bridge device or the port's device went")
	}

	// Nothing left of the lab: nothing to delete, and nothing in the way.
	d, ok, err = c.StartDeleteLabBridges(lab)
	names, wait = d.Names, d.Wait
	if err != nil || !ok || names != nil || wait != nil {
		t.Errorf("again: %v, %v, %v, %v; want nothing, ok", names, wait != nil, ok, err)
	}
}

// TestDeleteBridgesGuardE2E: a bridge read as the lab's that another lab
// took meanwhile fails the deletion's guard: nothing of the transaction is
// committed (the lab's other bridge stays too), and the error names the
// bridge that changed hands.
func TestDeleteBridgesGuardE2E(t *testing.T) {
	c := privateClient(t)
	id := randHex(t, 2)
	lab, other := "nltlab"+id, "nltother"+id
	mine, taken := "nlt"+id+"g1", "nlt"+id+"g2"
	var refs []bridgeRef
	for _, name := range []string{mine, taken} {
		if err := c.EnsureBridge(BridgeSpec{Name: name, Lab: lab, Datapath: DatapathNetdev}); err != nil {
			t.Fatal(err)
		}
		_, uuid, _, err := c.bridgeRow(name)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, bridgeRef{uuid: uuid, name: name})
	}
	t.Cleanup(func() { _ = c.DeleteBridge(mine, lab); _ = c.DeleteBridge(taken, other) })
	if _, err := c.VSCtl("set", "Bridge", taken, "external_ids:"+state.OVSLabKey+"="+other); err != nil {
		t.Fatal(err)
	}
	wait, _, err := c.startDeleteBridges(lab, refs)
	if err == nil || wait != nil || !strings.Contains(err.Error(), "bridge "+taken+" changed while netlab deleted it") {
		t.Fatalf("startDeleteBridges over a bridge that changed hands = %v (wait %v)", err, wait != nil)
	}
	if brs, err := c.Observe(); err != nil || brs[mine] == nil || brs[taken] == nil {
		t.Errorf("a bridge went though the guard failed (%v)", err)
	}
}
