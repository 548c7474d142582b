package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/service"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/supervise"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// LabStatus is what `netlab status` shows of one lab.
type LabStatus struct {
	Lab         string         `json:"lab"`
	File        string         `json:"file,omitempty"`
	Prefix      string         `json:"prefix,omitempty"`
	OVS         *state.OVSInfo `json:"ovs,omitempty"`
	Namespaces  []NSStatus     `json:"namespaces"`
	Bridges     []BridgeStatus `json:"bridges"`
	HostSysctls []SysctlStatus `json:"host_sysctls,omitempty"`
	// Drift lists the actions `up` would take to match the file; empty when
	// the lab matches it. DriftError says why drift could not be computed.
	Drift      []string `json:"drift"`
	DriftError string   `json:"drift_error,omitempty"`
	// Machine is the machine of a multi-machine lab whose part this is;
	// Tunnels its ends of the links to other machines, Remote what the
	// other machines have.
	Machine string         `json:"machine,omitempty"`
	Tunnels []TunnelStatus `json:"tunnels,omitempty"`
	Remote  []RemoteStatus `json:"remote,omitempty"`
	// LinksDown are the cables `netlab link` pulled, Partitions the
	// partitions `netlab partition` made: the lab's intent, not drift.
	LinksDown  []CableStatus     `json:"links_down,omitempty"`
	Partitions []PartitionStatus `json:"partitions,omitempty"`
	// Timelines are the lab's timelines: those it runs or ran, and the
	// file's never started.
	Timelines []TimelineStatus `json:"timelines,omitempty"`
}

// CableStatus is one pulled cable.
type CableStatus struct {
	// Interface is the interface whose cable is pulled ("ns/link").
	Interface string `json:"interface"`
	// Device is the device held down for it here ("ns/link"); "" when
	// nothing of the link is on this machine, or the file cannot be read.
	Device string `json:"device,omitempty"`
}

// PartitionStatus is one partition in force.
type PartitionStatus struct {
	Name   string   `json:"name"`
	A      []string `json:"a"`
	B      []string `json:"b"`
	OneWay bool     `json:"one_way,omitempty"`
	// Dropped counts the packets the rules of its receiving namespaces on
	// this machine dropped (a rule two partitions share counts for both).
	Dropped uint64 `json:"dropped"`
}

// TunnelStatus is one VXLAN tunnel to other machines, with what the
// kernel reports of it: its counters say whether it carries traffic.
type TunnelStatus struct {
	Name        string   `json:"name"`
	NS          string   `json:"ns"`
	Bridge      string   `json:"bridge,omitempty"`
	VNI         int      `json:"vni"`
	Local       string   `json:"local"`
	Remotes     []string `json:"remotes"`
	To          string   `json:"to"`
	MTU         int      `json:"mtu"`
	Underlay    string   `json:"underlay,omitempty"`
	UnderlayMTU int      `json:"underlay_mtu,omitempty"`
	Present     bool     `json:"present"`
	RxPackets   uint64   `json:"rx_packets"`
	TxPackets   uint64   `json:"tx_packets"`
}

// RemoteStatus is a namespace or bridge of the lab on another machine.
type RemoteStatus struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Machine string `json:"machine"`
	Address string `json:"address"`
}

// NSStatus is one namespace (or the host's part of the lab).
type NSStatus struct {
	Name   string       `json:"name"`
	Links  []LinkStatus `json:"links"`
	Routes []string     `json:"routes,omitempty"`
	// NAT is the lab's masquerade rules here, with their counters.
	NAT []state.NATRuleStats `json:"nat,omitempty"`
	// Processes are the reflectors and UDP bridges on this namespace's TUNs.
	Processes []ProcessStatus `json:"processes,omitempty"`
	// Services are the lab's services here.
	Services []ServiceStatus `json:"services,omitempty"`
	// PartitionedFrom are the sources whose packets the lab's partition
	// tables here drop, with the count of packets dropped.
	PartitionedFrom []state.PartitionDrop `json:"partitioned_from,omitempty"`
}

// ServiceStatus is one service: whether it runs, and is ready.
type ServiceStatus struct {
	Name string `json:"name"`
	// State is "running", "starting" (its supervisor restarts it) or
	// "down" (nothing supervises it).
	State    string `json:"state"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	Ready    bool   `json:"ready"`
	// Probe is what its readiness probe saw.
	Probe string `json:"probe,omitempty"`
	// Exit is how its program last ended, if it did.
	Exit string `json:"exit,omitempty"`
	Log  string `json:"log"`
}

// ProcessStatus is one supervised `netlab reflect` process.
type ProcessStatus struct {
	Device  string `json:"device"`
	PID     int    `json:"pid"`
	Spec    string `json:"spec"`
	Queues  int    `json:"queues"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Drops   uint64 `json:"drops"`
}

// LinkStatus is one interface.
type LinkStatus struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	State     string   `json:"state"`
	LinkLayer string   `json:"link_layer,omitempty"`
	MTU       int      `json:"mtu"`
	Master    string   `json:"master,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	// Impair is what the interface's netlab qdiscs and loss rule apply
	// ("rate 20mbit loss 2%"), Runtime that `netlab impair` set it.
	Impair  string `json:"impair,omitempty"`
	Runtime bool   `json:"impair_runtime,omitempty"`
	// OperState is the kernel's operational state ("up", "down",
	// "lower-layer-down", "unknown"); NoCarrier that the link is up with no
	// lower link (NO-CARRIER).
	OperState string `json:"operstate,omitempty"`
	NoCarrier bool   `json:"no_carrier,omitempty"`
	// CablePulled says `netlab link` pulled this interface's cable;
	// HeldDownFor names the interfaces whose pulled cable holds this link
	// down ("ns/link").
	CablePulled bool   `json:"cable_pulled,omitempty"`
	HeldDownFor string `json:"held_down_for,omitempty"`
}

// BridgeStatus is one bridge with its ports.
type BridgeStatus struct {
	Name     string       `json:"name"`
	Type     string       `json:"type"`
	Datapath string       `json:"datapath,omitempty"`
	FailMode string       `json:"fail_mode,omitempty"`
	Ports    []PortStatus `json:"ports"`
	// Controllers are an OVS bridge's OpenFlow controllers, each with
	// whether Open vSwitch is connected to it.
	Controllers []state.Controller `json:"controllers,omitempty"`
	// VLANFiltering: a Linux bridge that forwards by its ports' VLANs.
	VLANFiltering bool `json:"vlan_filtering,omitempty"`
}

// PortStatus is one bridge port.
type PortStatus struct {
	Name   string `json:"name"`
	OFPort int    `json:"ofport,omitempty"`
	// Type is an OVS port's Interface type: system (AF_PACKET),
	// afxdp-nonpmd or afxdp; empty for a Linux bridge port.
	Type string `json:"type,omitempty"`
	// AFXDPError is why up fell back from AF_XDP to system on this port.
	AFXDPError string `json:"afxdp_error,omitempty"`
	// VLAN is the port's VLAN setting: an OVS port's ("access 20",
	// "trunk 20,30", "native-untagged 10 trunk 20") or a Linux bridge
	// port's VLANs ("20 pvid untagged, 30").
	VLAN string `json:"vlan,omitempty"`
}

// SysctlStatus is a host sysctl the lab changed.
type SysctlStatus struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	Previous string `json:"previous"`
}

// Status observes one lab. When the journal names a topology file that still
// loads, it also reports drift: what `up` would change.
func (e *Engine) Status(lab string) (*LabStatus, error) {
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	oc, err := e.connectOVS(false)
	if err != nil {
		return nil, err
	}
	s, err := e.newSession(lab, oc)
	if err != nil {
		return nil, err
	}
	defer s.close()

	st := &LabStatus{Lab: lab, File: j.File, Prefix: j.Prefix, Drift: []string{}}
	var file *topology.Lab
	if j.File != "" {
		file, err = topology.Load(j.File)
		if err == nil {
			err = topology.ApplyPrefix(file, j.Prefix)
		}
		if err != nil {
			st.DriftError = fmt.Sprintf("cannot read the lab's file: %v", err)
			file = nil
		} else if file.Name != lab {
			st.DriftError = fmt.Sprintf("%s now describes lab %s", j.File, file.Name)
			file = nil
		} else if file, err = topology.ForMachine(file, j.Machine); err != nil {
			st.DriftError = fmt.Sprintf("the lab's part on this machine: %v", err)
			file = nil
		}
	} else {
		st.DriftError = "no topology file recorded"
	}
	// Without the file, observe with an empty lab of that name: markers and
	// the journal still find every object.
	want := file
	if want == nil {
		want = &topology.Lab{Name: lab, Host: &topology.Namespace{Name: topology.Host}}
	}
	snap, err := s.reader().Lab(want, j)
	if err != nil {
		return nil, err
	}
	if oc != nil {
		info := oc.Info()
		st.OVS = &info
	}
	if file != nil {
		p, err := plan.Make(planInput(file, snap, j, j.Force))
		if err != nil {
			st.DriftError = err.Error()
		}
		for _, a := range p {
			st.Drift = append(st.Drift, a.String())
		}
	}

	held := map[string][]string{}
	st.LinksDown, st.Partitions = eventStatus(file, snap, j, held)
	st.Timelines = timelineStatus(s.procs, j, snap, file)
	names := state.SortedNames(snap.Namespaces)
	sort.SliceStable(names, func(a, b int) bool { return names[a] == topology.Host && names[b] != topology.Host })
	for _, name := range names {
		o := snap.Namespaces[name]
		ns := NSStatus{Name: name, Links: []LinkStatus{}}
		for _, ln := range state.SortedNames(o.Links) {
			l := o.Links[ln]
			if name == topology.Host && l.Owner() != lab && snap.Bridges[ln] == nil {
				continue // a host interface the lab wants but does not own
			}
			ls := LinkStatus{Name: ln, Kind: l.Kind, State: "down", LinkLayer: l.LinkLayer, MTU: l.MTU, Master: l.Master}
			if l.Up {
				ls.State = "up"
			}
			for _, a := range l.Addrs {
				ls.Addresses = append(ls.Addresses, a.String())
			}
			ls.Impair, ls.Runtime = impairStatus(name, l, o, j)
			ls.OperState, ls.NoCarrier = l.OperState, l.NoCarrier
			ls.CablePulled = j.CablePulled(name, ln)
			ls.HeldDownFor = strings.Join(held[state.CableKey(name, ln)], ", ")
			ns.Links = append(ns.Links, ls)
		}
		for _, r := range o.Routes {
			m := r.Metric
			if m == 1024 && r.To.Addr().Is6() {
				m = 0 // the kernel's default for IPv6, not worth showing
			}
			r.Metric = m
			ns.Routes = append(ns.Routes, r.String())
		}
		if o.NAT != nil {
			ns.NAT = o.NAT.Rules
		}
		for _, dev := range state.SortedNames(o.Processes) {
			pr := o.Processes[dev]
			ps := ProcessStatus{Device: dev, PID: pr.PID, Spec: pr.Spec}
			if st, err := supervise.New(e.store, lab, nil).Stats(name, dev); err == nil {
				ps.Queues, ps.Packets, ps.Bytes, ps.Drops = st.Queues, st.Packets, st.Bytes, st.Drops
			}
			ns.Processes = append(ns.Processes, ps)
		}
		ns.Services = e.serviceStatus(lab, name, o, file)
		if o.Partition != nil {
			ns.PartitionedFrom = o.Partition.Drop
		}
		if name == topology.Host && len(ns.Links) == 0 && len(ns.Routes) == 0 && len(ns.NAT) == 0 {
			continue
		}
		st.Namespaces = append(st.Namespaces, ns)
	}
	for _, name := range state.SortedNames(snap.Bridges) {
		b := snap.Bridges[name]
		if b.Owner != lab {
			continue
		}
		bs := BridgeStatus{Name: name, Type: b.Type, Datapath: b.Datapath, FailMode: normFail(b), Ports: []PortStatus{}, Controllers: b.Controllers}
		for _, pn := range state.SortedNames(b.Ports) {
			p := b.Ports[pn]
			t := p.Type
			if t == "" {
				t = ovs.PortTypeSystem
			}
			bs.Ports = append(bs.Ports, PortStatus{Name: pn, OFPort: p.OFPort, Type: t, AFXDPError: j.AFXDPFailed[pn], VLAN: p.VLAN.String()})
		}
		if b.Type == topology.BridgeLinux {
			if l := snap.Namespaces[topology.Host].Links[name]; l != nil {
				bs.VLANFiltering = l.VLANFiltering
			}
			for _, l := range snap.Namespaces[topology.Host].Links {
				if l.Master == name {
					bs.Ports = append(bs.Ports, PortStatus{Name: l.Name, VLAN: bridgeVLANText(l.BridgeVLANs)})
				}
			}
			sort.Slice(bs.Ports, func(x, y int) bool { return bs.Ports[x].Name < bs.Ports[y].Name })
		}
		st.Bridges = append(st.Bridges, bs)
	}
	st.Machine = j.Machine
	if file != nil {
		st.Tunnels = tunnelStatus(file, snap)
		for _, r := range file.Remote {
			st.Remote = append(st.Remote, RemoteStatus{Kind: r.Kind, Name: r.Name, Machine: r.Machine, Address: r.Address.String()})
		}
	}
	host := snap.Namespaces[topology.Host]
	for _, k := range state.SortedNames(j.HostSysctls) {
		st.HostSysctls = append(st.HostSysctls, SysctlStatus{Key: k, Value: host.Sysctls[k], Previous: j.HostSysctls[k]})
	}
	return st, nil
}

// serviceStatus reports a namespace's services, probing each once.
func (e *Engine) serviceStatus(lab, ns string, o *state.Namespace, file *topology.Lab) []ServiceStatus {
	procs := supervise.New(e.store, lab, nil)
	var out []ServiceStatus
	for _, name := range state.SortedNames(o.Services) {
		sv := o.Services[name]
		st := ServiceStatus{Name: name, State: "down", PID: sv.PID, Restarts: sv.Restarts, Exit: sv.Exit, Log: procs.ServiceLog(ns, name)}
		switch {
		case sv.Supervisor != 0 && sv.PID != 0:
			st.State = "running"
		case sv.Supervisor != 0:
			st.State = "starting"
		}
		if st.State == "running" {
			var probe *topology.Ready
			if file != nil && file.Namespace(ns) != nil {
				for _, s := range file.Namespace(ns).Services {
					if s.Name == name {
						probe = s.Ready
					}
				}
			}
			if spec, err := service.ReadSpec(procs.ServiceSpecPath(ns, name)); err == nil {
				st.Ready, st.Probe = procs.Ready(*spec, probe)
			}
		}
		out = append(out, st)
	}
	return out
}

// bridgeVLANText prints a Linux bridge port's VLANs as `bridge vlan show`
// does: "20 pvid untagged, 30".
func bridgeVLANText(vs []state.BridgeVLAN) string {
	var parts []string
	for _, v := range vs {
		s := fmt.Sprint(v.VID)
		if v.PVID {
			s += " pvid"
		}
		if v.Untagged {
			s += " untagged"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func normFail(b *state.Bridge) string {
	if b.Type != topology.BridgeOVS {
		return ""
	}
	if b.FailMode == "" {
		return topology.FailStandalone
	}
	return b.FailMode
}

// tunnelStatus reports the lab part's tunnels as observed.
func tunnelStatus(part *topology.Lab, snap *state.Snapshot) []TunnelStatus {
	var out []TunnelStatus
	for _, t := range part.Tunnels {
		ts := TunnelStatus{Name: t.Name, NS: t.NS, Bridge: t.Bridge, VNI: t.VNI, Local: t.Local.String(), To: t.To, Remotes: []string{}}
		for _, r := range t.Remotes {
			ts.Remotes = append(ts.Remotes, r.String())
		}
		if u := snap.Underlay; u != nil {
			ts.Underlay, ts.UnderlayMTU = u.Dev, u.MTU
		}
		if ns := snap.Namespaces[t.NS]; ns != nil {
			if l := ns.Links[t.Name]; l != nil && l.VXLAN != nil {
				ts.Present, ts.MTU = true, l.MTU
				ts.RxPackets, ts.TxPackets = l.VXLAN.RxPackets, l.VXLAN.TxPackets
			}
		}
		out = append(out, ts)
	}
	return out
}
