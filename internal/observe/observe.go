// Package observe reads the part of the machine that matters to a lab: the
// objects that carry its marker, the ones whose names it wants (the clash
// candidates), and what it shares with the machine and other labs (host
// routes, host sysctls). What it reads becomes a state.Snapshot for the
// planner. It reads; it never changes anything.
package observe

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"github.com/netlab-dev/netlab/internal/apply"
	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/store"
	"github.com/netlab-dev/netlab/internal/supervise"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// Reader reads for one lab.
type Reader struct {
	Handles *kernel.Handles
	OVS     *ovs.Client // nil when none runs
	Store   *store.Store
	Procs   *supervise.Supervisor
	// Probe says what the kernel can apply of impairments; called only
	// for a lab with impairments.
	Probe func() (*state.ImpairSupport, error)
	// Parallel is how many namespaces are read at once (0:
	// apply.Parallelism).
	Parallel int
	// Flows, when set, holds the flow state (LabFlows, FlowsInSync) of
	// bridges whose flows are known without asking ovs-ofctl: up's
	// observation after a plan that did nothing to them (KnownFlows).
	Flows map[string]*state.Bridge
	// ProbeVLAN says what the kernel offers VLANs; called only for a lab
	// that asks the kernel for VLANs. Nil: not probed.
	ProbeVLAN func() (*state.VLANSupport, error)
	// Settle, when set, waits for what Open vSwitch is still applying of
	// the caller's (apply.Session.Settle): Lab reads the lab's namespaces
	// meanwhile, the host and Open vSwitch after it.
	Settle func() error
}

func (s *Reader) settle() error {
	if s.Settle == nil {
		return nil
	}
	return s.Settle()
}

func (s *Reader) ns(name string) (*kernel.NS, error) { return s.Handles.Get(name) }
func (s *Reader) forget(name string)                 { s.Handles.Forget(name) }

func (s *Reader) parallel() int {
	if s.Parallel > 0 {
		return s.Parallel
	}
	return apply.Parallelism()
}

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

// Namespace reads one namespace; a namespace that vanished meanwhile is nil.
func (s *Reader) Namespace(name string, keys []string) (*state.Namespace, error) {
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

// Lab builds the lab's snapshot: its namespaces (wanted, journaled or
// marked), the host objects it owns or whose names it wants, and the bridges.
func (s *Reader) Lab(lab *topology.Lab, j *state.Journal) (*state.Snapshot, error) {
	snap := &state.Snapshot{Lab: lab.Name, Namespaces: map[string]*state.Namespace{}, Bridges: map[string]*state.Bridge{},
		HostDefaultRouteDevs: defaultRouteDevs()}
	if cpus, err := kernel.OnlineCPUs(); err == nil {
		snap.CPUs = cpus // else unchecked: the reflector's own affinity call still fails clearly
	}
	onMachine, err := namespace.List()
	if err != nil {
		return nil, err
	}
	if err := checkLimits(lab, j); err != nil {
		return nil, err
	}
	// Open vSwitch answers while the kernel is read, as in Down: once it
	// has settled what the caller has it still doing.
	ovsSwitch := later(func() (ovs.Switch, error) {
		if err := s.settle(); err != nil {
			return ovs.Switch{}, err
		}
		if s.OVS == nil {
			return ovs.Switch{}, nil
		}
		return s.OVS.ObserveSwitch()
	})
	// Which namespaces are the lab's: those it wants and those its
	// journal names, and of the others those whose marker is the lab's
	// (read in one pass, no file kept: the files held open grow with the
	// lab, not with the machine). Another lab's namespace may be half
	// made or half gone while we look (labs come up concurrently): only
	// our own must be readable.
	wanted := make(map[string]*topology.Namespace, len(lab.Namespaces))
	for _, n := range lab.Namespaces {
		wanted[n.Name] = n
	}
	journaled := make(map[string]bool, len(j.Namespaces))
	for _, n := range j.Namespaces {
		journaled[n] = true
	}
	var mine, others []string
	for _, name := range onMachine {
		switch {
		case name == topology.Host:
		case wanted[name] != nil || journaled[name]:
			mine = append(mine, name)
		default:
			others = append(others, name)
		}
	}
	owners, _ := kernel.ReadOwners(others, s.parallel())
	for i, name := range others {
		if owners[i] == lab.Name {
			mine = append(mine, name)
		}
	}
	keys := func(name string) []string {
		if n := wanted[name]; n != nil {
			return sysctlKeys(n)
		}
		return nil
	}
	// What needs a thread inside each namespace (its socket, its sysctls)
	// in one pass; then its dumps, concurrently, on its own socket.
	prepared := s.Handles.Prepare(mine, keys, s.parallel())
	observed := make([]*state.Namespace, len(mine))
	errs := make([]error, len(mine))
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.parallel())
	for i, name := range mine {
		if err := prepared[i]; err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // vanished meanwhile
			}
			errs[i] = fmt.Errorf("observe namespace %s: %w", name, err)
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			observed[i], errs[i] = s.Namespace(name, keys(name))
		}()
	}
	wg.Wait()
	for i, name := range mine {
		if errs[i] != nil && wanted[name] == nil && !journaled[name] {
			errs[i], observed[i] = nil, nil
			s.forget(name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, name := range mine {
		if o := observed[i]; o != nil {
			snap.Namespaces[name] = o
		}
	}

	// The host's links are ports of the bridges: read once Open vSwitch
	// has opened them.
	if err := s.settle(); err != nil {
		return nil, err
	}
	hostKeys := sysctlKeys(lab.Host)
	for k := range j.HostSysctls {
		if !slices.Contains(hostKeys, k) {
			hostKeys = append(hostKeys, k)
		}
	}
	host, err := s.Namespace(topology.Host, hostKeys)
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
	if s.OVS != nil {
		snap.OVS = s.OVS.Info()
		sw, err := ovsSwitch()
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
	}
	// After the bridges are read; with no OVS running, the file's flows
	// are still read by Open vSwitch's parser (the plan says how up will
	// install them).
	if err := observeFlows(s.OVS, lab, snap, s.Flows); err != nil {
		return nil, err
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
	if err := observePartitions(lab, j, snap); err != nil {
		return nil, err
	}
	if s.ProbeVLAN != nil && wantsKernelVLAN(lab) {
		if snap.VLAN, err = s.ProbeVLAN(); err != nil {
			return nil, err
		}
	}
	s.Procs.Observe(snap)
	s.Procs.ObserveServices(snap)
	s.Procs.ObserveTimelines(snap)
	s.observeViews(lab.Name, snap)
	return snap, nil
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

// later runs f in a goroutine of its own and returns what waits for its
// result (at most once). The answer has room to be sent: a caller that
// returns early without waiting leaves no goroutine behind.
func later[T any](f func() (T, error)) (wait func() (T, error)) {
	type result struct {
		v   T
		err error
	}
	c := make(chan result, 1)
	go func() {
		v, err := f()
		c <- result{v, err}
	}()
	return func() (T, error) {
		r := <-c
		return r.v, r.err
	}
}
