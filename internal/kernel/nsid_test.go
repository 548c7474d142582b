package kernel

import (
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// hostID is the id the host (the test's sandbox) knows the namespace by,
// -1 for none.
func hostID(t *testing.T, name string) int {
	t.Helper()
	fd, err := namespace.Open(name)
	must(t, err)
	defer fd.Close()
	id, err := netlink.GetNetNsIdByFd(int(fd))
	must(t, err)
	return id
}

// Just before its first veth to the host, a namespace the run made gets an
// id there lower than every id in netlab's band, so the kernel's walks
// for that veth's notifications stop at the first id; an id another run
// took meanwhile is stepped over; a second veth asks for none; a namespace
// the run did not make, or with no veth to the host, keeps the kernel's
// (or none); at the band's floor the kernel's ids take over.
func TestHostIDsDescend(t *testing.T) {
	requireRoot(t)
	host, err := Open("host")
	must(t, err)
	defer host.Close()
	start, err := lowestHostID(host)
	must(t, err)
	prefix := uniq(t)
	runA, runB := NewHandles(), NewHandles()
	defer runA.Close()
	defer runB.Close()
	made := 0
	// create makes a namespace in run, with a veth to the host when toHost.
	create := func(run *Handles, toHost bool) string {
		t.Helper()
		name := fmt.Sprintf("%s-%d", prefix, made)
		made++
		t.Cleanup(func() { namespace.Delete(name) })
		n, err := run.CreateNamespace(name, "lab1", nil)
		must(t, err)
		if toHost {
			must(t, n.MakeVeth(Veth{Name: "eth0", Peer: host, PeerName: name + "h"}))
		}
		return name
	}

	a := create(runA, true)
	if got := hostID(t, a); got != int(start)-1 {
		t.Fatalf("first namespace: id %d, want %d (below the lowest, %d)", got, start-1, start)
	}
	b := create(runB, true) // another run, which reads the lowest: a's
	if got := hostID(t, b); got != hostID(t, a)-1 {
		t.Errorf("the other run's namespace: id %d, want %d", got, hostID(t, a)-1)
	}
	c := create(runA, true) // run A's next id is b's: taken
	if got := hostID(t, c); got != hostID(t, b)-1 {
		t.Errorf("after an id taken by another run: id %d, want %d", got, hostID(t, b)-1)
	}
	// A second veth to the host asks for no new id.
	cn, err := runA.Get(c)
	must(t, err)
	must(t, cn.MakeVeth(Veth{Name: "eth1", Peer: host, PeerName: c + "i"}))
	if got := hostID(t, c); got != hostID(t, b)-1 {
		t.Errorf("after a second veth: id %d", got)
	}
	// (Asking would have taken ids: the next namespace's would be lower.)
	if g, want := create(runA, true), hostID(t, c)-1; hostID(t, g) != want {
		t.Errorf("the namespace after a second veth: id %d, want %d", hostID(t, g), want)
	}

	// No veth to the host: no id there.
	d := create(runA, false)
	e := create(runA, false)
	dn, err := runA.Get(d)
	must(t, err)
	en, err := runA.Get(e)
	must(t, err)
	must(t, dn.MakeVeth(Veth{Name: "eth0", Peer: en, PeerName: "eth0"}))
	if got := hostID(t, d); got != -1 {
		t.Errorf("namespace with no veth to the host: id %d", got)
	}

	// foreign makes a namespace no run made.
	foreign := func(suffix string) string {
		name := prefix + "-" + suffix
		must(t, namespace.Create(name))
		t.Cleanup(func() { namespace.Delete(name) })
		return name
	}
	// kernelsID: the kernel gives its own id when it first describes a
	// link to the namespace here (a notification of its change, or a
	// dump, as this), the lowest free: small in this sandbox of few
	// namespaces, far below the band's floor.
	kernelsID := func(name, what string) {
		t.Helper()
		observe(t, host)
		if got := hostID(t, name); got < 0 || got >= 1000 {
			t.Errorf("%s: id %d, want the kernel's", what, got)
		}
	}

	other := foreign("x")
	on, err := runA.Get(other)
	must(t, err)
	must(t, on.MakeVeth(Veth{Name: "eth0", Peer: host, PeerName: other + "h"}))
	kernelsID(other, "namespace the run did not make")

	// At the band's floor, a new run leaves ids to the kernel.
	fd, err := namespace.Open(foreign("y"))
	must(t, err)
	must(t, netlink.SetNetNsIdByFd(int(fd), hostIDFloor))
	fd.Close()
	runC := NewHandles()
	defer runC.Close()
	kernelsID(create(runC, true), "below the floor")
}
