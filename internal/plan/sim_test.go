package plan

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// machine is a fake of the kernel and OVS, good enough to apply plans to: the
// tests use it to check that applying a plan converges (the next plan is
// empty), which is the property `up` relies on.
type machine struct {
	j     *state.Journal // what the engine would journal, as far as plans read it
	snap  *state.Snapshot
	peers map[string]string // "ns/link" -> "ns/link" of its veth peer
}

func newMachine() *machine {
	return &machine{j: &state.Journal{}, peers: map[string]string{}, snap: &state.Snapshot{
		Namespaces: map[string]*state.Namespace{
			topology.Host: {Name: topology.Host, Links: map[string]*state.Link{}, Sysctls: map[string]string{"net.ipv4.ip_forward": "0"}},
		},
		Bridges: map[string]*state.Bridge{},
	}}
}

func (m *machine) ns(t *testing.T, name string) *state.Namespace {
	t.Helper()
	ns := m.snap.Namespaces[name]
	if ns == nil {
		t.Fatalf("namespace %s does not exist", name)
	}
	return ns
}

func (m *machine) link(t *testing.T, ns, name string) *state.Link {
	t.Helper()
	l := m.ns(t, ns).Links[name]
	if l == nil {
		t.Fatalf("link %s/%s does not exist", ns, name)
	}
	return l
}

func (m *machine) apply(t *testing.T, a Action) {
	tt := t
	t.Helper()
	switch a.Op {
	case OpDelRoute:
		ns := m.ns(t, a.NS)
		ns.Routes = slices.DeleteFunc(ns.Routes, func(r state.Route) bool { return r == *a.Route })
		if a.NS == topology.Host {
			m.j.RemoveHostRoute(*a.Route)
		}
	case OpReplaceRoute:
		ns := m.ns(t, a.NS)
		r := *a.Route
		if a.NS == topology.Host {
			m.j.AddHostRoute(r)
		}
		if r.Dev == "" {
			// The kernel picks the device of the connected prefix.
			for _, l := range ns.Links {
				for _, p := range l.Addrs {
					if p.Masked().Contains(r.Via) {
						r.Dev = l.Name
					}
				}
			}
		}
		if r.Metric == 0 && r.To.Addr().Is6() {
			r.Metric = 1024
		}
		ns.Routes = slices.DeleteFunc(ns.Routes, func(o state.Route) bool { return o.To == r.To && o.Metric == r.Metric })
		ns.Routes = append(ns.Routes, r)
	case OpDelAddr:
		l := m.link(t, a.NS, a.Link)
		l.Addrs = slices.DeleteFunc(l.Addrs, func(p netip.Prefix) bool { return p == a.Addr })
	case OpAddAddr:
		l := m.link(t, a.NS, a.Link)
		if !slices.Contains(l.Addrs, a.Addr) {
			l.Addrs = append(l.Addrs, a.Addr)
		}
	case OpDelPorts:
		for _, p := range a.Ports {
			delete(m.snap.Bridges[a.Bridge].Ports, p.Name)
		}
	case OpAddPorts:
		b := m.snap.Bridges[a.Bridge]
		for _, p := range a.Ports {
			m.link(t, topology.Host, p.Name)
			b.Ports[p.Name] = &state.Port{Name: p.Name, Owner: a.Lab, OFPortRequest: p.OFPort, OFPort: p.OFPort, Type: p.Type}
		}
	case OpSetPortType:
		for _, p := range a.Ports {
			m.snap.Bridges[a.Bridge].Ports[p.Name].Type = p.Type
		}
	case OpSetOFPort:
		for _, p := range a.Ports {
			port := m.snap.Bridges[a.Bridge].Ports[p.Name]
			port.OFPortRequest, port.OFPort = p.OFPort, p.OFPort
		}
	case OpDelLink:
		// Like the driver's DeleteLink: nothing to do when it is gone (a
		// host veth end goes with its peer's namespace here; the kernel
		// frees it a little later).
		m.ns(t, a.NS)
		m.delLink(a.NS, a.Link)
		if b := m.snap.Bridges[a.Link]; a.NS == topology.Host && b != nil && b.Type == topology.BridgeLinux {
			delete(m.snap.Bridges, a.Link)
		}
		if a.NS == topology.Host {
			m.j.RemoveHostLink(a.Link)
		}
	case OpDelLinks:
		for _, name := range a.Links {
			m.apply(t, Action{Op: OpDelLink, Lab: a.Lab, NS: a.NS, Link: name})
		}
	case OpDelNamespace:
		for name := range m.ns(t, a.NS).Links {
			m.delLink(a.NS, name)
		}
		delete(m.snap.Namespaces, a.NS)
		m.j.RemoveNamespace(a.NS)
		m.j.RemoveNAT(a.NS) // its tables go with it
		m.j.RemoveLoss(a.NS)
	case OpDelBridge:
		delete(m.snap.Bridges, a.Bridge)
		delete(m.snap.Namespaces[topology.Host].Links, a.Bridge)
		m.j.RemoveBridge(a.Bridge)
	case OpRestoreSysctl, OpSetSysctl:
		if a.NS == topology.Host && a.Op == OpSetSysctl {
			m.j.SaveHostSysctl(a.Key, m.ns(t, a.NS).Sysctls[a.Key])
		}
		if a.Op == OpRestoreSysctl {
			delete(m.j.HostSysctls, a.Key)
			if len(a.HeldBy) > 0 {
				break // another lab holds it: the value stays
			}
		}
		m.ns(t, a.NS).Sysctls[a.Key] = a.Value
	case OpStopNSProcesses:
		for _, ns := range a.Namespaces {
			m.ns(t, ns)
		}
	case OpAddBridge:
		if m.snap.Bridges[a.Bridge] != nil {
			t.Fatalf("bridge %s exists", a.Bridge)
		}
		m.snap.Bridges[a.Bridge] = &state.Bridge{Name: a.Bridge, Type: topology.BridgeOVS, Owner: a.Lab, Datapath: a.Datapath, FailMode: a.FailMode, Ports: map[string]*state.Port{}}
		m.j.AddBridge(a.Bridge)
		m.ns(t, topology.Host).Links[a.Bridge] = &state.Link{Name: a.Bridge, Kind: state.KindTuntap, MTU: 1500}
	case OpSetFailMode:
		// Open vSwitch wipes the flow tables when the fail mode changes.
		b := m.snap.Bridges[a.Bridge]
		b.FailMode, b.LabFlows, b.FlowsInSync = a.FailMode, 0, false
	case OpAddLinuxBridge:
		m.ns(t, a.NS).Links[a.Link] = &state.Link{Name: a.Link, Kind: state.KindBridge, Alias: a.Alias, MTU: 1500}
		m.snap.Bridges[a.Link] = &state.Bridge{Name: a.Link, Type: topology.BridgeLinux, Owner: a.Lab}
		m.j.AddHostLink(a.Link)
	case OpAddNamespace:
		if m.snap.Namespaces[a.NS] != nil {
			t.Fatalf("namespace %s exists", a.NS)
		}
		m.snap.Namespaces[a.NS] = &state.Namespace{Name: a.NS, Owner: a.Lab, Sysctls: map[string]string{},
			Links: map[string]*state.Link{"lo": {Name: "lo", Kind: "device", Alias: a.Alias, Up: true}}}
		m.j.AddNamespace(a.NS)
	case OpAddVeth:
		for _, end := range [][2]string{{a.NS, a.Link}, {a.PeerNS, a.Peer}} {
			if m.ns(t, end[0]).Links[end[1]] != nil {
				t.Fatalf("link %s/%s exists", end[0], end[1])
			}
		}
		on := true
		m.ns(t, a.NS).Links[a.Link] = &state.Link{Name: a.Link, Kind: state.KindVeth, Alias: a.Alias, MTU: 1500,
			MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(len(a.Link))}, TxChecksum: &on}
		peerOn := true
		m.ns(t, a.PeerNS).Links[a.Peer] = &state.Link{Name: a.Peer, Kind: state.KindVeth, Alias: a.PeerAlias, MTU: 1500,
			MAC: net.HardwareAddr{2, 0, 0, 0, 1, byte(len(a.Peer))}, TxChecksum: &peerOn}
		m.peers[a.NS+"/"+a.Link] = a.PeerNS + "/" + a.Peer
		m.peers[a.PeerNS+"/"+a.Peer] = a.NS + "/" + a.Link
		for _, end := range [][2]string{{a.NS, a.Link}, {a.PeerNS, a.Peer}} {
			if end[0] == topology.Host {
				m.j.AddHostLink(end[1])
			}
		}
	case OpSetLink:
		l := m.link(t, a.NS, a.Link)
		if a.MAC != "" {
			l.MAC, _ = net.ParseMAC(a.MAC)
		}
		if a.MTU != 0 {
			l.MTU = a.MTU
		}
		if a.Master != nil {
			l.Master = *a.Master
		}
		if a.Up {
			l.Up = true
		}
	case OpSetFlows:
		b := m.snap.Bridges[a.Bridge]
		b.LabFlows, b.FlowsInSync = len(a.Flows), true
	case OpDelFlows:
		b := m.snap.Bridges[a.Bridge]
		b.LabFlows, b.FlowsInSync = 0, false
	case OpAddTuntap:
		if m.ns(tt, a.NS).Links[a.Link] != nil {
			t.Fatalf("link %s/%s exists", a.NS, a.Link)
		}
		m.ns(tt, a.NS).Links[a.Link] = &state.Link{Name: a.Link, Kind: state.KindTuntap, Alias: a.Alias, MTU: 1500,
			Tuntap: &state.Tuntap{TAP: a.Tuntap.TAP, MultiQueue: a.Tuntap.MultiQueue, VnetHdr: a.Tuntap.VnetHdr, Owner: a.Tuntap.Owner, Group: a.Tuntap.Group}}
	case OpAddVXLAN:
		if m.ns(tt, a.NS).Links[a.Link] != nil {
			t.Fatalf("link %s/%s exists", a.NS, a.Link)
		}
		v := &state.VXLAN{VNI: a.VXLAN.VNI, Local: a.VXLAN.Local, Port: a.VXLAN.Port}
		if a.VXLAN.Dev != "" {
			v.DevIndex = m.snap.Underlay.Index
		}
		on := true
		gro := true
		m.ns(tt, a.NS).Links[a.Link] = &state.Link{Name: a.Link, Kind: state.KindVXLAN, Alias: a.Alias, MTU: 1500, VXLAN: v,
			MAC: net.HardwareAddr{2, 0, 0, 0, 2, byte(len(a.Link))}, TxChecksum: &on, GRO: &gro}
	case OpSetGRO:
		on := a.On
		m.link(t, a.NS, a.Link).GRO = &on
	case OpSetRemotes:
		m.link(t, a.NS, a.Link).VXLAN.Remotes = slices.Clone(a.Remotes)
	case OpStartProcess:
		ns := m.ns(tt, a.NS)
		if ns.Processes == nil {
			ns.Processes = map[string]*state.Process{}
		}
		ns.Processes[a.Link] = &state.Process{PID: 4242, Spec: a.Spec}
	case OpStopProcess:
		delete(m.ns(tt, a.NS).Processes, a.Link)
	case OpSetNAT:
		nt := &state.NATTable{}
		for _, r := range a.NAT {
			nt.Rules = append(nt.Rules, state.NATRule{Source: r.Source, Out: r.Out})
		}
		m.ns(tt, a.NS).NAT = nt
		m.j.AddNAT(a.NS)
	case OpDelNAT:
		m.ns(tt, a.NS).NAT = nil
		m.j.RemoveNAT(a.NS)
	case OpSetTxChecksum:
		on := a.On
		m.link(t, a.NS, a.Link).TxChecksum = &on
	case OpSetQdisc, OpDelQdisc, OpSetLoss, OpDelLoss:
		m.applyImpair(t, a)
	default:
		t.Fatalf("simulator: unknown action %s", a.Op)
	}
}

// delLink deletes a link and, like the kernel, its veth peer.
func (m *machine) delLink(ns, name string) {
	if o := m.snap.Namespaces[ns]; o != nil {
		delete(o.Links, name)
		o.Routes = slices.DeleteFunc(o.Routes, func(r state.Route) bool { return r.Dev == name })
	}
	k := ns + "/" + name
	if peer, ok := m.peers[k]; ok {
		delete(m.peers, k)
		delete(m.peers, peer)
		pns, pname, _ := strings.Cut(peer, "/")
		m.delLink(pns, pname)
	}
}

// converge applies plans until one is empty, failing if it takes more than one.
func (m *machine) converge(t *testing.T, lab *topology.Lab) Plan {
	t.Helper()
	p, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	for _, a := range p {
		m.apply(t, a)
	}
	again, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev})
	if err != nil {
		t.Fatalf("second plan: %v", err)
	}
	if len(again) != 0 {
		t.Fatalf("not converged after one apply; still:\n%s", again)
	}
	return p
}
