package state

import (
	"slices"
	"time"

	"github.com/netlab-dev/netlab/topology"
)

// Journal is what netlab remembers of one lab between runs. It is written
// before each object is created (intent) and after each is removed, so a crash
// at any point leaves a journal that names everything that may exist.
type Journal struct {
	Lab string `json:"lab"`
	// File is the absolute path of the topology last brought up; status uses
	// it to report drift.
	File string `json:"file,omitempty"`
	// Prefix is the --prefix the lab was brought up with.
	Prefix string `json:"prefix,omitempty"`
	// Machine is the machine of a multi-machine lab whose part this is.
	Machine string `json:"machine,omitempty"`
	// Force is set when up was allowed to attach an interface carrying the
	// host's default route.
	Force bool `json:"force,omitempty"`
	// Namespaces netlab created (or was about to create) for this lab.
	Namespaces []string `json:"namespaces,omitempty"`
	// HostLinks are links in the host namespace netlab created: bridge ports,
	// host-side veth ends, Linux bridges.
	HostLinks []string `json:"host_links,omitempty"`
	// Bridges are the OVS bridges netlab created.
	Bridges []string `json:"ovs_bridges,omitempty"`
	// HostSysctls maps each host sysctl the lab holds to the machine's value
	// before the first lab set it (see SysctlLedger: several labs may hold
	// one); the last holder's down writes it back.
	HostSysctls map[string]string `json:"host_sysctls,omitempty"`
	// HostRoutes are the routes netlab installed (or was about to) in the
	// host namespace for this lab: with the route protocol, they prove a
	// host route is this lab's, so no other route is ever replaced or
	// deleted.
	HostRoutes []Route `json:"host_routes,omitempty"`
	// NAT lists the namespaces (host included) where netlab installed the
	// lab's nftables table.
	NAT []string `json:"nat,omitempty"`
	// Loss lists the namespaces where netlab installed the lab's netdev
	// table of loss rules.
	Loss []string `json:"loss,omitempty"`
	// Qdiscs lists the namespaces where netlab made impairment qdiscs
	// (they go with their links; this says where to look for them).
	Qdiscs []string `json:"qdiscs,omitempty"`
	// Impair holds the impairments `netlab impair` set at run time, by
	// "ns/link": they stand in for the file's until reset or down.
	Impair map[string]topology.Impair `json:"impair,omitempty"`
	// External maps each host interface attached to a lab bridge to its
	// state before, which down restores.
	External map[string]ExternalState `json:"external,omitempty"`
	// AFXDPFailed maps each OVS port on which Open vSwitch could not open
	// an AF_XDP socket to its error: up fell back to a system port there,
	// and port-type auto keeps it so.
	AFXDPFailed map[string]string `json:"afxdp_failed,omitempty"`
	// DownAt is when a down of the lab started; a down that finished takes
	// the journal with it, so a set DownAt means one was interrupted: the
	// lab's processes may have been told to stop and be on their way out.
	DownAt  time.Time `json:"down_at,omitzero"`
	Updated time.Time `json:"updated"`
	// LinksDown are the interfaces whose cable `netlab link` pulled, as
	// "ns/link" on the machine (CableKey): desired state like the file's,
	// so up keeps them down, until `netlab link ... up` (or --reset) or
	// down.
	LinksDown []string `json:"links_down,omitempty"`
	// Partitions are the partitions `netlab partition` made, in the order
	// made: desired state until `netlab heal` or down.
	Partitions []Partition `json:"partitions,omitempty"`
	// PartitionNS lists the namespaces where netlab installed the lab's
	// tables of partition rules (they go with their namespaces; this says
	// where to look for them once a partition is healed).
	PartitionNS []string `json:"partition_ns,omitempty"`
	// Timelines are the timelines the lab runs or ran (state/timeline.go),
	// in the order started: written before a runner starts.
	Timelines []Timeline `json:"timelines,omitempty"`
}

// addName inserts name into the sorted list, once: a binary search, and
// an append when names come in order (a plan's do), so recording the
// intents of a lab of 10,000 namespaces stays linear. (The lists are
// always kept sorted; store.Load sorts a journal written otherwise.)
func addName(list []string, name string) []string {
	i, found := slices.BinarySearch(list, name)
	if found {
		return list
	}
	return slices.Insert(list, i, name)
}

func removeName(list []string, name string) []string {
	return slices.DeleteFunc(list, func(s string) bool { return s == name })
}

// removeNames removes every one of names from list in one pass.
func removeNames(list []string, names []string) []string {
	if len(names) == 0 {
		return list
	}
	gone := make(map[string]bool, len(names))
	for _, n := range names {
		gone[n] = true
	}
	return slices.DeleteFunc(list, func(s string) bool { return gone[s] })
}

// AddNamespace records a namespace about to be created.
func (j *Journal) AddNamespace(name string) { j.Namespaces = addName(j.Namespaces, name) }

// RemoveNamespace forgets a namespace that is gone.
func (j *Journal) RemoveNamespace(name string) { j.Namespaces = removeName(j.Namespaces, name) }

// RemoveNamespaces forgets namespaces that are gone, in one pass.
func (j *Journal) RemoveNamespaces(names ...string) { j.Namespaces = removeNames(j.Namespaces, names) }

// RemoveHostLinks forgets host links that are gone, in one pass.
func (j *Journal) RemoveHostLinks(names ...string) { j.HostLinks = removeNames(j.HostLinks, names) }

// AddHostLink records a host link about to be created.
func (j *Journal) AddHostLink(name string) { j.HostLinks = addName(j.HostLinks, name) }

// RemoveHostLink forgets a host link that is gone.
func (j *Journal) RemoveHostLink(name string) { j.HostLinks = removeName(j.HostLinks, name) }

// AddBridge records an OVS bridge about to be created.
func (j *Journal) AddBridge(name string) { j.Bridges = addName(j.Bridges, name) }

// RemoveBridge forgets an OVS bridge that is gone.
func (j *Journal) RemoveBridge(name string) { j.Bridges = removeName(j.Bridges, name) }

// SaveHostSysctl remembers the value a host sysctl had before netlab first
// changed it. Later changes keep the first value.
func (j *Journal) SaveHostSysctl(key, previous string) {
	if j.HostSysctls == nil {
		j.HostSysctls = map[string]string{}
	}
	if _, ok := j.HostSysctls[key]; !ok {
		j.HostSysctls[key] = previous
	}
}

// AddHostRoute records a host route about to be installed.
func (j *Journal) AddHostRoute(r Route) {
	if !slices.Contains(j.HostRoutes, r) {
		j.HostRoutes = append(j.HostRoutes, r)
	}
}

// RemoveHostRoute forgets a host route that is gone.
func (j *Journal) RemoveHostRoute(r Route) {
	j.HostRoutes = slices.DeleteFunc(j.HostRoutes, func(x Route) bool { return x == r })
}

// ExternalState is a user's interface as it was before the lab attached it.
type ExternalState struct {
	Bridge string   `json:"bridge"`
	Master string   `json:"master,omitempty"`
	Up     bool     `json:"up"`
	Addrs  []string `json:"addresses,omitempty"`
}

// AddNAT records a namespace about to get the lab's NAT table.
func (j *Journal) AddNAT(ns string) { j.NAT = addName(j.NAT, ns) }

// RemoveNAT forgets a namespace whose NAT table is gone.
func (j *Journal) RemoveNAT(ns string) { j.NAT = removeName(j.NAT, ns) }

// Empty says whether the journal names nothing that may exist.
func (j *Journal) Empty() bool {
	return len(j.Namespaces) == 0 && len(j.HostLinks) == 0 && len(j.Bridges) == 0 && len(j.HostSysctls) == 0 &&
		len(j.NAT) == 0 && len(j.External) == 0 && len(j.Loss) == 0 && len(j.HostRoutes) == 0
}
