package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/openflow"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
	"golang.org/x/sys/unix"
)

// sysctlKeys lists the keys of a namespace's effective sysctls.
func sysctlKeys(ns *topology.Namespace) []string {
	var keys []string
	for _, s := range ns.EffectiveSysctls() {
		keys = append(keys, s.Key)
	}
	return keys
}

// hostNames are the host-namespace interface names the lab wants: bridges,
// bridge ports and host veth ends.
func hostNames(lab *topology.Lab) map[string]bool {
	names := map[string]bool{}
	for _, b := range lab.Bridges {
		names[b.Name] = true
	}
	for _, l := range lab.Links {
		for _, e := range []topology.LinkEnd{l.A, l.B} {
			if e.NS == topology.Host {
				names[e.Name] = true
			}
		}
	}
	for _, b := range lab.Bridges {
		for _, x := range b.External {
			names[x.Name] = true
		}
	}
	for _, t := range lab.Tunnels {
		if t.NS == topology.Host {
			names[t.Name] = true
		}
	}
	return names
}

// underlay finds the host interface a machine's tunnels go over: the one
// the file names, else the one with the machine's address. It reads the
// host's links before the snapshot keeps only the lab's.
func underlay(lab *topology.Lab, host *state.Namespace) *state.Underlay {
	me := lab.MachineByName(lab.Machine)
	if me == nil {
		return nil
	}
	for _, name := range state.SortedNames(host.Links) {
		l := host.Links[name]
		match := name == me.Interface
		if me.Interface == "" {
			match = slices.ContainsFunc(l.Addrs, func(p netip.Prefix) bool { return p.Addr() == me.Address })
		}
		if match {
			return &state.Underlay{Dev: name, Index: l.Index, MTU: l.MTU}
		}
	}
	return nil
}

// HostAddrs lists the addresses of this machine's interfaces (in the host
// namespace): which machine of a lab this one is.
func HostAddrs() ([]netip.Addr, error) {
	h, err := kernel.Open(topology.Host)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	o, err := h.Observe(nil)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, l := range o.Links {
		for _, p := range l.Addrs {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// defaultRouteDevs reads the host's default-route interfaces from /proc
// (the process's own namespace is the host's).
func defaultRouteDevs() []string {
	var devs []string
	if b, err := os.ReadFile("/proc/net/route"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
			if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
				devs = append(devs, f[0])
			}
		}
	}
	if b, err := os.ReadFile("/proc/net/ipv6_route"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			// dest plen src splen nexthop metric refcnt use flags dev
			if len(f) == 10 && f[0] == strings.Repeat("0", 32) && f[1] == "00" && f[9] != "lo" {
				devs = append(devs, f[9])
			}
		}
	}
	return devs
}

// filesPerNamespace is how many files netlab keeps open for each of the
// lab's namespaces while it works on it (the namespace and a netlink
// socket); filesReserve is what it needs besides (Open vSwitch, nftables,
// the namespaces being read, standard streams).
const (
	filesPerNamespace = 2
	filesReserve      = 256
)

// checkFileLimit refuses, before anything is made, a lab too big for the
// files this process may open: up would otherwise fail with "too many open
// files" after making thousands of objects, and a second up the same way.
func checkFileLimit(lab *topology.Lab, j *state.Journal) error {
	n := len(lab.Namespaces)
	for _, name := range j.Namespaces {
		if lab.Namespace(name) == nil {
			n++
		}
	}
	need := uint64(filesPerNamespace*n + filesReserve)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil // unknown: the kernel says so when it comes to it
	}
	if need <= lim.Cur {
		return nil
	}
	if need <= lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
			return nil
		}
	}
	return topology.ErrorList{&topology.Error{File: lab.File, Pos: lab.Pos, Path: "namespaces", Msg: fmt.Sprintf(
		"%d namespaces: netlab keeps about %d files open for them, and this process may open %d (ulimit -n; hard limit %d): raise the limit (ulimit -Hn, or LimitNOFILE= for a service) or split the lab",
		n, need, lim.Cur, lim.Max)}}
}

// observeNS reads one namespace; a namespace that vanished meanwhile is nil.
func (s *session) observeNS(name string, keys []string) (*state.Namespace, error) {
	h, err := s.ns(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("observe namespace %s: %w", name, err)
	}
	o, err := h.Observe(keys)
	if err != nil {
		return nil, fmt.Errorf("observe namespace %s: %w", name, err)
	}
	return o, nil
}

// observe builds the lab's snapshot: its namespaces (wanted, journaled or
// marked), the host objects it owns or whose names it wants, and the bridges.
func (s *session) observe(lab *topology.Lab, j *state.Journal) (*state.Snapshot, error) {
	snap := &state.Snapshot{Lab: lab.Name, Namespaces: map[string]*state.Namespace{}, Bridges: map[string]*state.Bridge{},
		HostDefaultRouteDevs: defaultRouteDevs()}
	if cpus, err := kernel.OnlineCPUs(); err == nil {
		snap.CPUs = cpus // else unchecked: the reflector's own affinity call still fails clearly
	}
	onMachine, err := namespace.List()
	if err != nil {
		return nil, err
	}
	if err := checkFileLimit(lab, j); err != nil {
		return nil, err
	}
	// Observe the namespaces concurrently: each has its own handle, and the
	// kernel answers them independently. The handle of a namespace that is
	// not the lab's is closed as soon as it has been read, so the files
	// held open grow with the lab, not with the machine.
	observed := make([]*state.Namespace, len(onMachine))
	errs := make([]error, len(onMachine))
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallelism)
	for i, name := range onMachine {
		var keys []string
		if lab.Namespace(name) != nil && name != topology.Host {
			keys = sysctlKeys(lab.Namespace(name))
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			observed[i], errs[i] = s.observeNS(name, keys)
			mine := lab.Namespace(name) != nil || slices.Contains(j.Namespaces, name) || observed[i] != nil && observed[i].Owner == lab.Name
			if !mine {
				s.forget(name)
			}
		}()
	}
	wg.Wait()
	for i, name := range onMachine {
		// Another lab's namespace may be half made or half gone while we
		// look (labs come up concurrently): only our own must be readable.
		if errs[i] != nil && lab.Namespace(name) == nil && !slices.Contains(j.Namespaces, name) {
			errs[i], observed[i] = nil, nil
			s.forget(name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, name := range onMachine {
		o := observed[i]
		if o == nil {
			continue
		}
		wanted := lab.Namespace(name) != nil && name != topology.Host
		if wanted || o.Owner == lab.Name || slices.Contains(j.Namespaces, name) {
			snap.Namespaces[name] = o
		} else {
			s.forget(name)
		}
	}

	keys := sysctlKeys(lab.Host)
	for k := range j.HostSysctls {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	host, err := s.observeNS(topology.Host, keys)
	if err != nil {
		return nil, err
	}
	if err := s.observeHostShares(lab.Name, lab.Host.EffectiveRoutes(), host, snap); err != nil {
		return nil, err
	}
	wantHost := hostNames(lab)
	if lab.Machine != "" {
		snap.Underlay = underlay(lab, host)
	}
	if s.ovs != nil {
		snap.OVS = s.ovs.Info()
		sw, err := s.ovs.ObserveSwitch()
		if err != nil {
			return nil, err
		}
		snap.OVS.NoAFXDP = kernel.NoAFXDP()
		snap.OVS.AFXDP = slices.Contains(sw.IfaceTypes, ovs.PortTypeAFXDPNonPMD) && slices.Contains(sw.IfaceTypes, ovs.PortTypeAFXDP) &&
			snap.OVS.NoAFXDP == ""
		for name, b := range sw.Bridges {
			if b.Owner == lab.Name || wantHost[name] || hasOwnedPort(b, lab.Name) || hasPortNamed(b, wantHost) {
				snap.Bridges[name] = b
			}
		}
		if err := s.observeFlows(lab, snap); err != nil {
			return nil, err
		}
	}
	for name, l := range host.Links {
		if b := snap.Bridges[name]; b != nil && b.Owner == lab.Name {
			continue // the own interface of the lab's OVS bridge
		}
		if l.Owner() != lab.Name && !wantHost[name] {
			delete(host.Links, name)
			continue
		}
		if l.Kind == state.KindBridge {
			snap.Bridges[name] = &state.Bridge{Name: name, Type: topology.BridgeLinux, Owner: l.Owner()}
		}
	}
	snap.Namespaces[topology.Host] = host
	if err := observeNAT(lab, j, snap); err != nil {
		return nil, err
	}
	if err := s.observeImpair(lab, j, snap); err != nil {
		return nil, err
	}
	s.e.observeProcesses(lab.Name, snap)
	return snap, nil
}

// observeHostShares reads what the host namespace shares with the machine
// and with other labs: the routes of others to the destinations the lab
// routes there, and the host sysctls other labs hold (the ledger).
func (s *session) observeHostShares(lab string, routes []topology.Route, host *state.Namespace, snap *state.Snapshot) error {
	if len(routes) > 0 {
		h, err := s.ns(topology.Host)
		if err != nil {
			return err
		}
		dsts := make([]netip.Prefix, len(routes))
		for i, r := range routes {
			dsts[i] = r.To
		}
		if host.Foreign, err = h.ForeignRoutes(dsts); err != nil {
			return err
		}
	}
	ledger, err := s.e.store.ReadSysctls()
	if err != nil {
		return err
	}
	for key := range ledger.Keys {
		if others := ledger.Others(key, lab); others != nil {
			if snap.SysctlHolders == nil {
				snap.SysctlHolders = map[string]map[string]string{}
			}
			snap.SysctlHolders[key] = others
		}
	}
	return nil
}

func hasPortNamed(b *state.Bridge, names map[string]bool) bool {
	for name := range b.Ports {
		if names[name] {
			return true
		}
	}
	return false
}

func hasOwnedPort(b *state.Bridge, lab string) bool {
	for _, p := range b.Ports {
		if p.Owner == lab {
			return true
		}
	}
	return false
}

// observeFlows fills FlowsInSync of the lab's OVS bridges whose file entry
// has flows, and LabFlows of the others. The
// comparison is Open vSwitch's own (diff-flows normalises both sides), so a
// flow written differently but meaning the same is in sync.
func (s *session) observeFlows(lab *topology.Lab, snap *state.Snapshot) error {
	cookie := state.FlowCookie(lab.Name)
	for name, ob := range snap.Bridges {
		if ob.Type != topology.BridgeOVS || ob.Owner != lab.Name {
			continue
		}
		// The plan needs the comparison where the file has flows, and the
		// count of the lab's flows only where it has none (to remove them):
		// one ovs-ofctl round per bridge, not two.
		if b := lab.Bridge(name); b != nil && b.HasFlows() {
			differ, err := s.ovs.StaticFlowsDiffer(name, cookie, openflow.BridgeFlows(b, state.LearnCookie(lab.Name)))
			if err != nil {
				return err
			}
			ob.FlowsInSync = !differ
			continue
		}
		flows, err := s.ovs.DumpFlows(name)
		if err != nil {
			return err
		}
		for _, f := range flows {
			if f.Cookie == cookie {
				ob.LabFlows++
			}
		}
	}
	return nil
}

// observeNAT reads the lab's nftables table in the namespaces that want NAT
// and in those where the journal says netlab installed it.
func observeNAT(lab *topology.Lab, j *state.Journal, snap *state.Snapshot) error {
	names := map[string]bool{}
	for _, ns := range lab.AllNamespaces() {
		if len(ns.NAT) > 0 {
			names[ns.Name] = true
		}
	}
	for _, ns := range j.NAT {
		names[ns] = true
	}
	for _, name := range state.SortedNames(names) {
		o := snap.Namespaces[name]
		if o == nil {
			continue // the namespace is absent; so is its table
		}
		t, err := nft.ObserveNAT(name, lab.Name)
		if err != nil {
			return fmt.Errorf("observe nat in %s: %w", name, err)
		}
		o.NAT = t
	}
	return nil
}
