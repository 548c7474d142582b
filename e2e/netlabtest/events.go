package netlabtest

import (
	"sync"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// LinkDown pulls the cable of the interface iface of namespace ns ("host"
// for a host-side veth end or a bridge port) in the middle of a test, as
// `netlab link LAB NS/IFACE down` does: the interface stays up, with its
// addresses and routes, and sees no carrier (its veth peer is set down).
// The cable is plugged back when the test ends, unless LinkUp did it
// first.
//
//	lab.LinkDown(t, "blue", "veth1") // blue/veth1: NO-CARRIER until the test ends
func (l *Lab) LinkDown(t testing.TB, ns, iface string) {
	t.Helper()
	ns, iface = l.NS(ns), l.ifName(ns, iface)
	// Registered first: a failed change may still have been journaled.
	t.Cleanup(func() {
		if _, err := l.eng.SetLinkState(l.lab.Name, ns, iface, false); err != nil {
			t.Errorf("netlabtest: plug the cable of %s/%s back: %v", ns, iface, err)
		}
	})
	if _, err := l.eng.SetLinkState(l.lab.Name, ns, iface, true); err != nil {
		t.Fatalf("netlabtest: pull the cable of %s/%s: %v", ns, iface, err)
	}
}

// LinkUp plugs the cable of the interface back, as `netlab link LAB
// NS/IFACE up` does: its peer comes up with its addresses and routes.
func (l *Lab) LinkUp(t testing.TB, ns, iface string) {
	t.Helper()
	ns, iface = l.NS(ns), l.ifName(ns, iface)
	if _, err := l.eng.SetLinkState(l.lab.Name, ns, iface, false); err != nil {
		t.Fatalf("netlabtest: plug the cable of %s/%s back: %v", ns, iface, err)
	}
}

// PartitionOption configures Lab.Partition.
type PartitionOption func(*partitionOptions)

type partitionOptions struct {
	name   string
	oneWay bool
}

// OneWay drops only the first group's packets to the second: the second
// group still reaches the first, but nothing it is answered comes back.
func OneWay() PartitionOption { return func(o *partitionOptions) { o.oneWay = true } }

// PartitionName names the partition (default: the first free of p1, p2,
// ...), as `netlab status` and `netlab heal` show it.
func PartitionName(name string) PartitionOption {
	return func(o *partitionOptions) { o.name = name }
}

// Partition cuts the traffic between two groups of the lab's namespaces
// (as the file names them) in the middle of a test, as `netlab partition`
// does: every packet between them is dropped where it would be delivered,
// IPv4 and IPv6, whatever the protocol and the path, and nothing is
// rejected or reset; traffic inside a group and with namespaces in neither
// is untouched. It returns the function that heals it, which the test's
// cleanup calls too if the test did not.
//
//	heal := lab.Partition(t, []string{"n1"}, []string{"n2", "n3"})
//	... the majority goes on without n1 ...
//	heal()
func (l *Lab) Partition(t testing.TB, a, b []string, opts ...PartitionOption) (heal func()) {
	t.Helper()
	var o partitionOptions
	for _, fn := range opts {
		fn(&o)
	}
	p := state.Partition{Name: o.name, OneWay: o.oneWay}
	for _, ns := range a {
		p.A = append(p.A, l.NS(ns))
	}
	for _, ns := range b {
		p.B = append(p.B, l.NS(ns))
	}
	res, err := l.eng.Partition(l.lab.Name, p)
	if err != nil {
		t.Fatalf("netlabtest: partition %v / %v: %v", a, b, err)
	}
	var once sync.Once
	heal = func() {
		once.Do(func() {
			if _, err := l.eng.Heal(l.lab.Name, res.Partition.Name); err != nil {
				t.Errorf("netlabtest: heal partition %s: %v", res.Partition.Name, err)
			}
		})
	}
	t.Cleanup(heal)
	return heal
}

// Carrier says whether the interface iface of namespace ns has a carrier
// now (it is up with a lower link), as `ip link` shows it: false for a
// pulled cable (NO-CARRIER) and for a link that is down.
func (l *Lab) Carrier(t testing.TB, ns, iface string) bool {
	t.Helper()
	st, err := l.Status()
	if err != nil {
		t.Fatalf("netlabtest: status: %v", err)
	}
	want, name := l.NS(ns), l.ifName(ns, iface)
	if ns == topology.Host {
		want = topology.Host
	}
	for _, n := range st.Namespaces {
		if n.Name != want {
			continue
		}
		for _, ls := range n.Links {
			if ls.Name == name {
				return ls.State == "up" && !ls.NoCarrier
			}
		}
	}
	t.Fatalf("netlabtest: lab %s has no interface %s/%s", l.lab.Name, ns, iface)
	return false
}
