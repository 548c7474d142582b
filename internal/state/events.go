package state

import (
	"net/netip"
	"slices"
)

// Events are run-time changes of a running lab that netlab keeps as desired
// state, like `netlab impair`'s: a pulled cable (`netlab link`) and a
// partition (`netlab partition`). The journal holds them, the planner
// wants them in place of the file's state, up keeps them, status shows
// them as intent rather than drift, and down removes what they made.

// CableKey names an interface in Journal.LinksDown: "ns/link", as on the
// machine.
func CableKey(ns, link string) string { return ns + "/" + link }

// PullCable records that the cable of ns/link is pulled.
func (j *Journal) PullCable(ns, link string) {
	j.LinksDown = addName(j.LinksDown, CableKey(ns, link))
}

// PlugCable forgets a pulled cable: the file's state (up) applies again.
func (j *Journal) PlugCable(ns, link string) {
	j.LinksDown = removeName(j.LinksDown, CableKey(ns, link))
}

// CablePulled says whether the journal holds the cable of ns/link pulled.
func (j *Journal) CablePulled(ns, link string) bool {
	return slices.Contains(j.LinksDown, CableKey(ns, link))
}

// Partition cuts the traffic between two groups of the lab's namespaces
// (as on the machine): packets from A to B are dropped, and unless OneWay
// those from B to A too. Traffic inside a group, and to or from namespaces
// in neither, is untouched.
type Partition struct {
	Name   string   `json:"name"`
	A      []string `json:"a"`
	B      []string `json:"b"`
	OneWay bool     `json:"one_way,omitempty"`
}

// Same says whether two partitions cut the same traffic, whatever their
// names and the order of their namespaces (and of their groups, both
// ways).
func (p Partition) Same(q Partition) bool {
	sorted := func(s []string) []string { c := slices.Clone(s); slices.Sort(c); return c }
	same := func(a, b []string) bool { return slices.Equal(sorted(a), sorted(b)) }
	if p.OneWay != q.OneWay {
		return false
	}
	return same(p.A, q.A) && same(p.B, q.B) || !p.OneWay && same(p.A, q.B) && same(p.B, q.A)
}

// Partition returns the journal's partition called name.
func (j *Journal) Partition(name string) (Partition, bool) {
	i := slices.IndexFunc(j.Partitions, func(p Partition) bool { return p.Name == name })
	if i < 0 {
		return Partition{}, false
	}
	return j.Partitions[i], true
}

// SetPartition records a partition, replacing one of the same name.
func (j *Journal) SetPartition(p Partition) {
	if i := slices.IndexFunc(j.Partitions, func(q Partition) bool { return q.Name == p.Name }); i >= 0 {
		j.Partitions[i] = p
		return
	}
	j.Partitions = append(j.Partitions, p)
}

// RemovePartition forgets a partition (healed).
func (j *Journal) RemovePartition(name string) {
	j.Partitions = slices.DeleteFunc(j.Partitions, func(p Partition) bool { return p.Name == name })
}

// AddPartitionNS records a namespace about to get the lab's partition
// tables.
func (j *Journal) AddPartitionNS(ns string) { j.PartitionNS = addName(j.PartitionNS, ns) }

// RemovePartitionNS forgets a namespace whose partition tables are gone.
func (j *Journal) RemovePartitionNS(ns string) { j.PartitionNS = removeName(j.PartitionNS, ns) }

// PartitionChain is the chain of the lab's partition tables: a base chain
// on the input hook of the namespace, so a packet of the other group is
// dropped where it would be delivered — never on output, where the kernel
// would fail the sender's system call with EPERM instead of letting the
// packet vanish as a cut network does.
const PartitionChain = "partition"

// PartitionTable is what the lab's partition tables in a namespace (one
// `ip` and one `ip6` table named NFTTable(lab), each with PartitionChain)
// drop: packets from these sources, with the count of packets dropped.
type PartitionTable struct {
	Drop []PartitionDrop
	// Foreign says a table holds something netlab did not write; up
	// replaces it.
	Foreign bool
}

// PartitionDrop is one source whose packets a namespace's input drops.
type PartitionDrop struct {
	From    netip.Addr `json:"from"`
	Packets uint64     `json:"packets"`
}

// Sources lists what the table drops, in its order.
func (t *PartitionTable) Sources() []netip.Addr {
	if t == nil {
		return nil
	}
	out := make([]netip.Addr, len(t.Drop))
	for i, d := range t.Drop {
		out[i] = d.From
	}
	return out
}
