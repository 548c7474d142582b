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

// simSteps is the simulator: what each kind of action does to the fake
// machine. A kind without an entry fails TestEveryKind.
var simSteps = map[Op]func(m *machine, t *testing.T, lab string, st Step){
	OpSetHosts: func(m *machine, t *testing.T, lab string, st Step) {
		m.snap.HostsHash = st.(SetHosts).Hash
	},
	OpSetView: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetView)
		m.ns(t, a.NS).ViewHash = a.Hash
	},
	OpStartService: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(StartService)
		ns := m.ns(t, a.NS)
		if ns.Services == nil {
			ns.Services = map[string]*state.Service{}
		}
		ns.Services[a.Name] = &state.Service{Name: a.Name, Hash: a.Hash, Supervisor: 4343, PID: 4344}
	},
	OpStopService: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(StopService)
		delete(m.ns(t, a.NS).Services, a.Name)
	},
	// Impairments: a qdisc lives on its link (and goes with it), a loss
	// table in its namespace.
	OpSetQdisc: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetQdisc)
		l := m.link(t, a.NS, a.Link)
		if l.Qdisc != nil && !l.Qdisc.Ours {
			t.Fatalf("set-qdisc over someone else's qdisc on %s/%s", a.NS, a.Link)
		}
		q := &state.Qdisc{Ours: true, Kind: "netem", Handle: RootHandle(*a.Impair), Impair: observable(*a.Impair)}
		if a.Impair.Rate != 0 {
			tb := TBFOf(*a.Impair)
			q.Kind, q.Burst, q.LimitBytes = "tbf", tb.Burst, tb.Limit
		}
		l.Qdisc = q
	},
	OpDelQdisc: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelQdisc)
		l := m.link(t, a.NS, a.Link)
		if l.Qdisc == nil || !l.Qdisc.Ours || l.Qdisc.Handle != a.Handle {
			t.Fatalf("del-qdisc of a qdisc that is not netlab's on %s/%s", a.NS, a.Link)
		}
		l.Qdisc = nil
	},
	OpSetLoss: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetLoss)
		ns := m.ns(t, a.NS)
		lt := &state.LossTable{Loss: map[string]float64{}}
		for _, r := range a.Loss {
			m.link(t, a.NS, r.Link)
			lt.Loss[r.Link] = r.Percent
		}
		ns.Loss = lt
		m.j.AddLoss(a.NS)
	},
	OpDelLoss: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelLoss)
		m.ns(t, a.NS).Loss = nil
		m.j.RemoveLoss(a.NS)
	},
	OpAttachExternal: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(AttachExternal)
		l := m.link(t, topology.Host, a.Link)
		if m.j.External == nil {
			m.j.External = map[string]state.ExternalState{}
		}
		if _, saved := m.j.External[a.Link]; !saved {
			m.j.External[a.Link] = state.ExternalState{Bridge: a.Bridge, Master: l.Master, Up: l.Up}
		}
		l.Up = true
		if a.BridgeType == topology.BridgeLinux {
			l.Master = a.Bridge
			return
		}
		m.snap.Bridges[a.Bridge].Ports[a.Link] = &state.Port{Name: a.Link, Owner: lab, OFPortRequest: a.Ports[0].OFPort, OFPort: a.Ports[0].OFPort}
	},
	OpDetachExternal: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DetachExternal)
		prev := m.j.External[a.Link]
		if b := m.snap.Bridges[a.Bridge]; b != nil && b.Ports != nil {
			delete(b.Ports, a.Link)
		}
		if l := m.ns(t, topology.Host).Links[a.Link]; l != nil {
			l.Master, l.Up = prev.Master, prev.Up
		}
		delete(m.j.External, a.Link)
	},
	OpSetSysctl: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetSysctl)
		if a.NS == topology.Host {
			m.j.SaveHostSysctl(a.Key, m.ns(t, a.NS).Sysctls[a.Key])
		}
		m.ns(t, a.NS).Sysctls[a.Key] = a.Value
	},
	OpRestoreSysctl: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(RestoreSysctl)
		delete(m.j.HostSysctls, a.Key)
		if len(a.HeldBy) == 0 { // else another lab holds it: the value stays
			m.ns(t, a.NS).Sysctls[a.Key] = a.Value
		}
	},
	OpDelRoute: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelRoute)
		ns := m.ns(t, a.NS)
		ns.Routes = slices.DeleteFunc(ns.Routes, func(r state.Route) bool { return r == *a.Route })
		if a.NS == topology.Host {
			m.j.RemoveHostRoute(*a.Route)
		}
	},
	OpReplaceRoute: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(ReplaceRoute)
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
	},
	OpDelAddr: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelAddr)
		l := m.link(t, a.NS, a.Link)
		l.Addrs = slices.DeleteFunc(l.Addrs, func(p netip.Prefix) bool { return p == a.Addr })
	},
	OpAddAddr: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(AddAddr)
		l := m.link(t, a.NS, a.Link)
		if !slices.Contains(l.Addrs, a.Addr) {
			l.Addrs = append(l.Addrs, a.Addr)
		}
	},
	OpDelPorts: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelPorts)
		for _, p := range a.Ports {
			delete(m.snap.Bridges[a.Bridge].Ports, p.Name)
		}
	},
	OpAddPorts: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(AddPorts)
		b := m.snap.Bridges[a.Bridge]
		for _, p := range a.Ports {
			if p.Type != topology.PortInternal { // Open vSwitch makes an internal port's device
				m.link(t, topology.Host, p.Name)
			}
			b.Ports[p.Name] = &state.Port{Name: p.Name, Owner: lab, OFPortRequest: p.OFPort, OFPort: p.OFPort, Type: p.Type, VLAN: p.VLAN}
		}
	},
	OpSetPortVLAN: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetPortVLAN)
		for _, p := range a.Ports {
			m.snap.Bridges[a.Bridge].Ports[p.Name].VLAN = p.VLAN
		}
	},
	OpSetControllers: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetControllers)
		b := m.snap.Bridges[a.Bridge]
		b.Controllers = nil
		for _, target := range a.Targets {
			b.Controllers = append(b.Controllers, state.Controller{Target: target})
		}
	},
	OpAddVLAN: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(AddVLAN)
		m.link(t, a.NS, a.Parent)
		m.ns(t, a.NS).Links[a.Link] = &state.Link{Name: a.Link, Kind: state.KindVLAN, Alias: a.Alias, MTU: 1500, VLANID: a.ID, VLANParent: a.Parent}
	},
	OpSetVLANFiltering: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetVLANFiltering)
		m.link(t, topology.Host, a.Bridge).VLANFiltering = a.On
	},
	OpSetBridgeVLANs: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetBridgeVLANs)
		m.link(t, topology.Host, a.Link).BridgeVLANs = slices.Clone(a.VLANs)
	},
	OpSetPortType: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetPortType)
		for _, p := range a.Ports {
			m.snap.Bridges[a.Bridge].Ports[p.Name].Type = p.Type
		}
	},
	OpSetOFPort: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetOFPort)
		for _, p := range a.Ports {
			port := m.snap.Bridges[a.Bridge].Ports[p.Name]
			port.OFPortRequest, port.OFPort = p.OFPort, p.OFPort
		}
	},
	OpDelLink: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelLink)
		m.deleteLink(t, a.NS, a.Link)
	},
	OpDelLinks: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelLinks)
		for _, name := range a.Links {
			m.deleteLink(t, a.NS, name)
		}
	},
	OpDelNamespace: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelNamespace)
		for name := range m.ns(t, a.NS).Links {
			m.delLink(a.NS, name)
		}
		delete(m.snap.Namespaces, a.NS)
		m.j.RemoveNamespace(a.NS)
		m.j.RemoveNAT(a.NS) // its tables go with it
		m.j.RemoveLoss(a.NS)
		m.j.RemovePartitionNS(a.NS)
	},
	OpDelBridge: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelBridge)
		delete(m.snap.Bridges, a.Bridge)
		delete(m.snap.Namespaces[topology.Host].Links, a.Bridge)
		m.j.RemoveBridge(a.Bridge)
	},
	OpStopNSProcesses: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(StopNSProcesses)
		for _, ns := range a.Namespaces {
			m.ns(t, ns)
		}
	},
	OpAddBridge: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(AddBridge)
		if m.snap.Bridges[a.Bridge] != nil {
			t.Fatalf("bridge %s exists", a.Bridge)
		}
		m.snap.Bridges[a.Bridge] = &state.Bridge{Name: a.Bridge, Type: topology.BridgeOVS, Owner: lab, Datapath: a.Datapath, FailMode: a.FailMode, Ports: map[string]*state.Port{}}
		m.j.AddBridge(a.Bridge)
		m.ns(t, topology.Host).Links[a.Bridge] = &state.Link{Name: a.Bridge, Kind: state.KindTuntap, MTU: 1500}
	},
	OpSetFailMode: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetFailMode)
		// Open vSwitch wipes the flow tables when the fail mode changes.
		b := m.snap.Bridges[a.Bridge]
		b.FailMode, b.LabFlows, b.FlowsInSync = a.FailMode, 0, false
	},
	OpAddLinuxBridge: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(AddLinuxBridge)
		m.ns(t, a.NS).Links[a.Link] = &state.Link{Name: a.Link, Kind: state.KindBridge, Alias: a.Alias, MTU: 1500}
		m.snap.Bridges[a.Link] = &state.Bridge{Name: a.Link, Type: topology.BridgeLinux, Owner: lab}
		m.j.AddHostLink(a.Link)
	},
	OpAddNamespace: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(AddNamespace)
		if m.snap.Namespaces[a.NS] != nil {
			t.Fatalf("namespace %s exists", a.NS)
		}
		m.snap.Namespaces[a.NS] = &state.Namespace{Name: a.NS, Owner: lab, Sysctls: map[string]string{},
			Links: map[string]*state.Link{"lo": {Name: "lo", Kind: "device", Alias: a.Alias, Up: true}}}
		m.j.AddNamespace(a.NS)
	},
	OpAddVeth: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(AddVeth)
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
	},
	OpSetLink: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetLink)
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
	},
	OpSetFlows: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetFlows)
		b := m.snap.Bridges[a.Bridge]
		b.LabFlows, b.FlowsInSync = len(a.Flows), true
	},
	OpDelFlows: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelFlows)
		b := m.snap.Bridges[a.Bridge]
		b.LabFlows, b.FlowsInSync = 0, false
	},
	OpAddTuntap: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(AddTuntap)
		if m.ns(t, a.NS).Links[a.Link] != nil {
			t.Fatalf("link %s/%s exists", a.NS, a.Link)
		}
		m.ns(t, a.NS).Links[a.Link] = &state.Link{Name: a.Link, Kind: state.KindTuntap, Alias: a.Alias, MTU: 1500,
			Tuntap: &state.Tuntap{TAP: a.Tuntap.TAP, MultiQueue: a.Tuntap.MultiQueue, VnetHdr: a.Tuntap.VnetHdr, Owner: a.Tuntap.Owner, Group: a.Tuntap.Group}}
	},
	OpAddVXLAN: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(AddVXLAN)
		if m.ns(t, a.NS).Links[a.Link] != nil {
			t.Fatalf("link %s/%s exists", a.NS, a.Link)
		}
		v := &state.VXLAN{VNI: a.VXLAN.VNI, Local: a.VXLAN.Local, Port: a.VXLAN.Port}
		if a.VXLAN.Dev != "" {
			v.DevIndex = m.snap.Underlay.Index
		}
		on := true
		gro := true
		m.ns(t, a.NS).Links[a.Link] = &state.Link{Name: a.Link, Kind: state.KindVXLAN, Alias: a.Alias, MTU: 1500, VXLAN: v,
			MAC: net.HardwareAddr{2, 0, 0, 0, 2, byte(len(a.Link))}, TxChecksum: &on, GRO: &gro}
	},
	OpSetGRO: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetGRO)
		on := a.On
		m.link(t, a.NS, a.Link).GRO = &on
	},
	OpSetRemotes: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetRemotes)
		m.link(t, a.NS, a.Link).VXLAN.Remotes = slices.Clone(a.Remotes)
	},
	OpStartProcess: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(StartProcess)
		ns := m.ns(t, a.NS)
		if ns.Processes == nil {
			ns.Processes = map[string]*state.Process{}
		}
		ns.Processes[a.Link] = &state.Process{PID: 4242, Spec: a.Spec}
	},
	OpStopProcess: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(StopProcess)
		delete(m.ns(t, a.NS).Processes, a.Link)
	},
	OpSetNAT: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetNAT)
		nt := &state.NATTable{}
		for _, r := range a.NAT {
			nt.Rules = append(nt.Rules, state.NATRuleStats{NATRule: r})
		}
		m.ns(t, a.NS).NAT = nt
		m.j.AddNAT(a.NS)
	},
	OpDelNAT: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelNAT)
		m.ns(t, a.NS).NAT = nil
		m.j.RemoveNAT(a.NS)
	},
	// Events. A link set down loses, as in the kernel, its IPv6 addresses
	// (link-local ones aside: the fake never has any) and every route
	// through it; a partition's tables live in their namespace.
	OpLinkDown: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(LinkDown)
		l := m.link(t, a.NS, a.Link)
		if !l.Up {
			t.Fatalf("link-down of %s/%s, which is down", a.NS, a.Link)
		}
		l.Up = false
		l.Addrs = slices.DeleteFunc(l.Addrs, func(p netip.Prefix) bool { return p.Addr().Is6() && !p.Addr().IsLinkLocalUnicast() })
		ns := m.ns(t, a.NS)
		ns.Routes = slices.DeleteFunc(ns.Routes, func(r state.Route) bool { return r.Dev == a.Link })
	},
	OpLinkUp: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(LinkUp)
		l := m.link(t, a.NS, a.Link)
		if l.Up {
			t.Fatalf("link-up of %s/%s, which is up", a.NS, a.Link)
		}
		l.Up = true
	},
	OpSetPartition: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetPartition)
		pt := &state.PartitionTable{}
		for _, from := range a.Drop {
			pt.Drop = append(pt.Drop, state.PartitionDrop{From: from})
		}
		m.ns(t, a.NS).Partition = pt
		m.j.AddPartitionNS(a.NS)
	},
	OpDelPartition: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(DelPartition)
		m.ns(t, a.NS).Partition = nil
		m.j.RemovePartitionNS(a.NS)
	},
	// A timeline's runner: the intent journals a new timeline (the
	// engine's apply does), the runner then runs.
	OpStartTimeline: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(StartTimeline)
		if a.Events != nil {
			m.j.SetTimeline(state.Timeline{Name: a.Name, Events: a.Events, Hash: a.Hash})
		}
		if m.snap.Timelines == nil {
			m.snap.Timelines = map[string]*state.TimelineProc{}
		}
		m.snap.Timelines[a.Name] = &state.TimelineProc{Supervisor: 5151, PID: 5152}
	},
	OpStopTimeline: func(m *machine, t *testing.T, lab string, st Step) {
		delete(m.snap.Timelines, st.(StopTimeline).Name)
	},
	OpSetTxChecksum: func(m *machine, t *testing.T, lab string, st Step) {
		a := st.(SetTxChecksum)
		on := a.On
		m.link(t, a.NS, a.Link).TxChecksum = &on
	},
}

func (m *machine) apply(t *testing.T, a Action) {
	t.Helper()
	step, ok := simSteps[a.Op()]
	if !ok {
		t.Fatalf("simulator: no step for %s", a.Op())
	}
	step(m, t, a.Lab, a.Step)
}

// deleteLink is the driver's DeleteLink: nothing to do when it is gone (a
// host veth end goes with its peer's namespace here; the kernel frees it a
// little later).
func (m *machine) deleteLink(t *testing.T, ns, name string) {
	m.ns(t, ns)
	m.delLink(ns, name)
	if b := m.snap.Bridges[name]; ns == topology.Host && b != nil && b.Type == topology.BridgeLinux {
		delete(m.snap.Bridges, name)
	}
	if ns == topology.Host {
		m.j.RemoveHostLink(name)
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
