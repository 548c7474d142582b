package plan

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// Events are desired state the journal holds (state/events.go): the
// planner wants a pulled cable's device down and a partition's tables in
// place as it wants the file's addresses, so up keeps them and status
// shows no drift for them.

// Cable is where the cable of an interface is pulled on this machine: the
// device netlab holds down so that the interface sees no carrier.
type Cable struct {
	NS, Link string
	// Self: the device is the interface itself, a tunnel to another
	// machine (a VXLAN device has no carrier: it goes down instead).
	Self bool
}

// CableOf finds the cable of the interface ns/link (as on the machine) in
// the lab, or in this machine's part of it: the interface's veth peer,
// which netlab sets down — the interface then stays up with no carrier, as
// on a real pulled cable (a veth's carrier is its peer's administrative
// state, and the kernel lets no one set a veth's carrier otherwise) — or,
// for a link that crosses machines, the tunnel that stands for it here.
// ok is false when there is no cable to pull here: no such interface, or
// a TUN/TAP (whose carrier is its program's) or a bridge's own interface.
func CableOf(lab *topology.Lab, ns, link string) (c Cable, ok bool) {
	at := func(e topology.End) bool { return e.NS == ns && e.Name == link }
	for _, l := range lab.Links {
		switch {
		case at(l.A.End):
			return Cable{NS: l.B.NS, Link: l.B.Name}, true
		case at(l.B.End):
			return Cable{NS: l.A.NS, Link: l.A.Name}, true
		}
	}
	for _, t := range lab.Tunnels {
		switch {
		case t.NS == ns && t.Name == link && t.Far.Name != "":
			return Cable{NS: t.NS, Link: t.Name, Self: true}, true
		case t.Far.Name != "" && at(t.Far):
			return Cable{NS: t.NS, Link: t.Name}, true
		}
	}
	return Cable{}, false
}

// heldDevices are the devices the journal's pulled cables hold down here,
// by "ns/link", with the cables each holds.
func heldDevices(lab *topology.Lab, j *state.Journal) map[string][]string {
	out := map[string][]string{}
	if j == nil {
		return out
	}
	for _, k := range j.LinksDown {
		ns, link, _ := strings.Cut(k, "/")
		if c, ok := CableOf(lab, ns, link); ok {
			out[key(c.NS, c.Link)] = append(out[key(c.NS, c.Link)], k)
		}
	}
	return out
}

// held says which pulled cables hold the wanted link ns/name down ("" for
// none).
func (p *planner) held(ns, name string) string {
	return strings.Join(p.heldBy[key(ns, name)], ", ")
}

// throughHeld says whether a wanted route of ns goes through a link held
// down: the kernel removed it when the link went down, and refuses it
// while the link is down (its gateway is unreachable), so it is wanted
// again only with the link.
func (p *planner) throughHeld(ns string, r state.Route) bool {
	if r.Dev != "" {
		return p.held(ns, r.Dev) != ""
	}
	for name, w := range p.want[ns] {
		for _, a := range w.addrs {
			if a.Masked().Contains(r.Via) && p.held(ns, name) != "" {
				return true
			}
		}
	}
	return false
}

// partitionWant is what a namespace's partition tables should drop, and
// for which partitions.
type partitionWant struct {
	drop  []netip.Addr
	names []string
}

// PartitionDrops says what the input of each of the lab's namespaces (of
// this machine's part) drops for the partitions: the addresses of every
// namespace whose packets to it a partition cuts (a partition A / B cuts
// A's packets to B, and unless one-way B's to A), IPv4 first, sorted,
// without its own. Addresses are the file's: a remote namespace's come
// with the machine's part (topology.RemotePart).
func PartitionDrops(lab *topology.Lab, parts []state.Partition) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for ns, w := range partitionWants(lab, parts) {
		out[ns] = w.drop
	}
	return out
}

func partitionWants(lab *topology.Lab, parts []state.Partition) map[string]*partitionWant {
	out := map[string]*partitionWant{}
	cut := func(to string, from []string, name string) {
		if lab.Namespace(to) == nil || to == topology.Host {
			return // on another machine: its part cuts it
		}
		w := out[to]
		if w == nil {
			w = &partitionWant{}
			out[to] = w
		}
		own := NamespaceAddrs(lab, to)
		for _, ns := range from {
			for _, a := range NamespaceAddrs(lab, ns) {
				if !slices.Contains(own, a) && !slices.Contains(w.drop, a) {
					w.drop = append(w.drop, a)
				}
			}
		}
		if !slices.Contains(w.names, name) {
			w.names = append(w.names, name)
		}
	}
	for _, p := range parts {
		for _, ns := range p.B {
			cut(ns, p.A, p.Name)
		}
		if !p.OneWay {
			for _, ns := range p.A {
				cut(ns, p.B, p.Name)
			}
		}
	}
	for ns, w := range out {
		if len(w.drop) == 0 {
			delete(out, ns)
			continue
		}
		slices.SortFunc(w.drop, netip.Addr.Compare) // IPv4 first, as the tables hold them
	}
	return out
}

// NamespaceAddrs are the addresses the file gives a namespace of the lab
// (here, or on another machine), without IPv6 link-local ones: those a
// partition tells its packets by.
func NamespaceAddrs(lab *topology.Lab, name string) []netip.Addr {
	var prefixes []netip.Prefix
	if ns := lab.Namespace(name); ns != nil && name != topology.Host {
		prefixes = ns.Addresses()
	}
	for _, r := range lab.Remote {
		if r.Kind == "namespace" && r.Name == name {
			prefixes = append(prefixes, r.Addresses...)
		}
	}
	var out []netip.Addr
	for _, p := range prefixes {
		a := p.Addr().Unmap()
		if !a.IsLinkLocalUnicast() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// partitions makes each namespace's partition tables drop what the
// journal's partitions want, and removes them where nothing is wanted any
// more.
func (p *planner) partitions() {
	var parts []state.Partition
	if p.j != nil {
		parts = p.j.Partitions
	}
	want := partitionWants(p.lab, parts)
	for _, ns := range p.lab.Namespaces {
		w := want[ns.Name]
		var have *state.PartitionTable
		if o := p.snap.Namespaces[ns.Name]; o != nil {
			have = o.Partition
		}
		switch {
		case w == nil && have != nil:
			p.emit(DelPartition{NS: ns.Name})
		case w != nil && (have == nil || have.Foreign || !slices.Equal(have.Sources(), w.drop)):
			p.emit(SetPartition{NS: ns.Name, Drop: w.drop, Partitions: w.names})
		}
	}
}

// partitionClashes are namespaces where a partition wants the lab's
// partition tables but tables of that name are there that netlab did not
// make (the journal does not name the namespace).
func (p *planner) partitionClashes(clash func(topology.Pos, string, string, ...any)) {
	if p.j == nil || len(p.j.Partitions) == 0 {
		return
	}
	for _, ns := range p.lab.Namespaces {
		o := p.snap.Namespaces[ns.Name]
		if o == nil || o.Partition == nil || slices.Contains(p.j.PartitionNS, ns.Name) {
			continue
		}
		if PartitionDrops(p.lab, p.j.Partitions)[ns.Name] != nil {
			clash(ns.Pos, "namespaces."+ns.Name, "nftables table ip or ip6 %s already exists in namespace %s and netlab did not make it; netlab leaves it alone", state.NFTTable(p.lab.Name), ns.Name)
		}
	}
}

// LinkEvents is the part of a plan that sets the cable's device down or up
// (what `netlab link` runs), with what comes back with the device: its
// settings and addresses (the kernel flushes a link's IPv6 addresses when
// it goes down) and the routes of its namespace through it (the kernel
// removes those too). Other drift stays up's business.
func LinkEvents(p Plan, lab *topology.Lab, c Cable) Plan {
	var out Plan
	on := func(ns, link string) bool { return ns == c.NS && link == c.Link }
	for _, a := range p {
		switch s := a.Step.(type) {
		case LinkDown:
			if on(s.NS, s.Link) {
				out = append(out, a)
			}
		case LinkUp:
			if on(s.NS, s.Link) {
				out = append(out, a)
			}
		case SetLink:
			if on(s.NS, s.Link) {
				out = append(out, a)
			}
		case AddAddr:
			if on(s.NS, s.Link) {
				out = append(out, a)
			}
		case ReplaceRoute:
			if s.NS == c.NS && routeThrough(lab, c, *s.Route) {
				out = append(out, a)
			}
		}
	}
	return out
}

// routeThrough says whether a route of the cable's namespace goes through
// its device: named, or with a gateway in one of the device's prefixes.
func routeThrough(lab *topology.Lab, c Cable, r state.Route) bool {
	if r.Dev != "" {
		return r.Dev == c.Link
	}
	w := desired(lab, "", nil)[c.NS][c.Link]
	if w == nil {
		return false
	}
	for _, a := range w.addrs {
		if a.Masked().Contains(r.Via) {
			return true
		}
	}
	return false
}

// PartitionEvents is the part of a plan that changes partition tables:
// what `netlab partition` and `netlab heal` run.
func PartitionEvents(p Plan) Plan {
	var out Plan
	for _, a := range p {
		if kinds[a.Op()].event == partitionEvent {
			out = append(out, a)
		}
	}
	return out
}
