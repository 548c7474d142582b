package topology

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// A lab may span machines: `machines:` names them with the address their
// VXLAN tunnels use (the underlay), each namespace and bridge says
// `machine: NAME` (default: the first machine), and a bridge may be
// stretched over several (`machines: [a, b]`). The same file goes to every
// machine; each brings up its part (ForMachine), and the links that cross
// machines become VXLAN tunnels. There is no control plane: the kernel's
// VXLAN carries the links.

// Machine is one machine of a lab.
type Machine struct {
	Name      string
	Address   netip.Addr // the underlay address: this machine's end of every tunnel
	Interface string     // the underlay interface; "" lets the kernel route
	Pos       Pos
	Path      string
}

// VXLAN constants.
const (
	VXLANPort = 4789 // IANA's VXLAN port
	minVNI    = 1
	maxVNI    = 1<<24 - 1
)

// VXLANOverhead is what VXLAN adds to every frame: outer IP (20 or 40), UDP
// (8), VXLAN (8) and the inner Ethernet header (14). A tunnel's inner MTU is
// the underlay's minus this.
func VXLANOverhead(underlay netip.Addr) int {
	if underlay.Is4() {
		return 50
	}
	return 70
}

// Tunnel is this machine's end of a link that crosses machines: a VXLAN
// device. A namespace's end is the interface itself (its addresses, MAC
// and MTU are the interface's); a bridge's end is a port of the bridge.
type Tunnel struct {
	Name    string
	NS      string // Host for a bridge port
	Bridge  string // the bridge it is a port of; "" for a namespace's interface
	VNI     int
	Local   netip.Addr   // this machine's underlay address
	Dev     string       // this machine's underlay interface, if the file names one
	Remotes []netip.Addr // the other ends' machines: one, or several for a stretched bridge
	// To says what the tunnel reaches, such as "red/veth3 on machine b";
	// Far is that end (zero for a stretched bridge's mesh port, which
	// reaches a bridge on each other machine).
	To        string
	Far       End
	Addresses []netip.Prefix
	MAC       net.HardwareAddr
	MTU       int // the file's; 0: the tunnel's inner MTU
	Pos       Pos
	Path      string
}

// RemotePart is a namespace or bridge of the lab on another machine.
type RemotePart struct {
	Kind    string // "namespace" or "bridge"
	Name    string
	Machine string
	Address netip.Addr
	// Addresses are a namespace's addresses (of its interfaces, TUNs and
	// TAPs), which this machine's part needs to tell its traffic apart (a
	// partition); none for a bridge.
	Addresses []netip.Prefix
}

// machineRef is a machine name as written in machine: or machines:.
type machineRef struct {
	name string
	pos  Pos
	path string
}

func (p *parser) parseMachines(e entry) {
	for _, me := range p.entries(e.v, e.path) {
		m := &Machine{Name: me.key, Pos: pos(me.k), Path: me.path}
		if !validMachineName(me.key) {
			p.errorf(pos(me.k), me.path, "machine name %q: use 1 to 32 of a-z, 0-9 and -, starting with a letter or digit", me.key)
		}
		f := p.fields(me.v, me.path, "machine")
		if ae, ok := f["address"]; ok {
			if s, ok := p.str(ae); ok {
				a, err := netip.ParseAddr(s)
				switch {
				case err != nil:
					p.errorf(pos(ae.v), ae.path, "%q is not an IP address (the machine's underlay address, such as 192.0.2.1)", s)
				case !a.IsGlobalUnicast() && !a.IsPrivate() || a.Zone() != "":
					p.errorf(pos(ae.v), ae.path, "%s cannot carry tunnels: want a unicast address without a zone", s)
				default:
					m.Address = a
				}
			}
		} else {
			p.errorf(pos(me.k), me.path, "required: address, the machine's underlay address its tunnels use")
		}
		if ie, ok := f["interface"]; ok {
			if s, ok := p.str(ie); ok {
				if msg := checkIfName(s, "interface"); msg != "" {
					p.errorf(pos(ie.v), ie.path, "%s", msg)
				}
				m.Interface = s
			}
		}
		p.lab.Machines = append(p.lab.Machines, m)
	}
}

func validMachineName(s string) bool {
	return s != "" && len(s) <= 32 && s[0] != '-' && allIn(s, "abcdefghijklmnopqrstuvwxyz0123456789-")
}

// machineRefs reads machine: NAME, or with list, machines: [NAME, ...].
func (p *parser) machineRefs(e entry, list bool) []machineRef {
	if !list {
		if s, ok := p.str(e); ok {
			return []machineRef{{name: s, pos: pos(e.v), path: e.path}}
		}
		return []machineRef{}
	}
	out := []machineRef{}
	if e.v.Kind == yaml.SequenceNode && len(e.v.Content) == 0 {
		p.errorf(pos(e.v), e.path, "want at least one machine")
	}
	for _, it := range p.stringList(e, "a machine name") {
		out = append(out, machineRef{name: it.value, pos: it.pos, path: it.path})
	}
	return out
}

// checkMachines resolves machine: and machines: (a lab of several machines
// puts what names none on the first), and checks vni: and the VNIs every
// tunnel will have.
func (p *parser) checkMachines() {
	lab := p.lab
	byName := map[string]*Machine{}
	byAddr := map[netip.Addr]*Machine{}
	for _, m := range lab.Machines {
		if o, dup := byAddr[m.Address]; dup && m.Address.IsValid() {
			p.errorf(m.Pos, join(m.Path, "address"), "machine %s has the address of machine %s (line %d): each machine needs its own", m.Name, o.Name, o.Pos.Line)
		}
		byAddr[m.Address] = m
		byName[m.Name] = m
	}
	resolve := func(refs []machineRef) []string {
		var out []string
		for _, r := range refs {
			switch {
			case len(lab.Machines) == 0:
				p.errorf(r.pos, r.path, "machine %s: the lab names no machines (add machines: at the top level)", r.name)
			case byName[r.name] == nil:
				p.errorf(r.pos, r.path, "no machine %s in machines: (%s)", r.name, strings.Join(lab.machineNames(), ", "))
			case slices.Contains(out, r.name):
				p.errorf(r.pos, r.path, "machine %s is listed twice", r.name)
			default:
				out = append(out, r.name)
			}
		}
		return out
	}
	first := ""
	if len(lab.Machines) > 0 {
		first = lab.Machines[0].Name
	}
	for _, ni := range p.nss {
		ni.ns.Machine = first
		if ms := resolve(ni.machine); len(ms) > 0 {
			ni.ns.Machine = ms[0]
		}
	}
	for _, bi := range p.bridges {
		bi.b.Machines = nil
		if first != "" {
			bi.b.Machines = []string{first}
		}
		if ms := resolve(bi.machines); len(ms) > 0 {
			bi.b.Machines = ms
		}
		if bi.vni != nil && len(bi.b.Machines) < 2 {
			p.errorf(pos(bi.vni.v), bi.vni.path, "vni: only for a bridge stretched over several machines (machines: [a, b])")
		}
	}
	for _, l := range lab.Links {
		a, b := p.byKey[l.A.key()], p.byKey[l.B.key()]
		for _, ii := range []*ifaceInfo{a, b} {
			if ii == nil || ii.vni == nil {
				continue
			}
			switch {
			case l.VNI != 0 && ii.iface.VNI != l.VNI:
				p.errorf(pos(ii.vni.v), ii.vni.path, "vni %d differs from the other end's %d: a link has one", ii.iface.VNI, l.VNI)
			case l.VNI == 0:
				l.VNI, l.VNIPos = ii.iface.VNI, pos(ii.vni.v)
			}
			if ma, mb := lab.linkMachines(l); ma == mb {
				p.errorf(pos(ii.vni.v), ii.vni.path, "vni: only for a link between two machines; this one stays on %s", machineOrHere(ma))
			}
		}
	}
	// Interfaces with a vni: that no link took (their own errors are
	// reported elsewhere) need no second word.
	p.errs = append(p.errs, checkVNIs(lab)...)
}

func machineOrHere(m string) string {
	if m == "" {
		return "one machine"
	}
	return "machine " + m
}

func (l *Lab) machineNames() []string {
	var out []string
	for _, m := range l.Machines {
		out = append(out, m.Name)
	}
	return out
}

// MachineByName returns the machine called name, or nil.
func (l *Lab) MachineByName(name string) *Machine {
	for _, m := range l.Machines {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// nsMachine is the machine of a namespace; the host is on every machine.
func (l *Lab) nsMachine(ns string) string {
	if n := l.Namespace(ns); n != nil && !n.IsHost() {
		return n.Machine
	}
	return ""
}

// linkMachines says on which machine each end of a link is. A namespace's
// end is on the namespace's machine. A host end (host/NAME) is on the
// machine of its peer namespace: the host is on every machine. A bridge
// port is on the peer namespace's machine when the bridge is there too
// (a local veth), else on the bridge's first machine (a tunnel).
func (l *Lab) linkMachines(k *Link) (a, b string) {
	end := func(e, other LinkEnd) string {
		switch {
		case e.Bridge != "":
			om := l.nsMachine(other.NS)
			br := l.Bridge(e.Bridge)
			if br == nil || len(br.Machines) == 0 || slices.Contains(br.Machines, om) {
				return om
			}
			return br.Machines[0]
		case e.NS == Host:
			if other.NS == Host && len(l.Machines) > 0 {
				return l.Machines[0].Name
			}
			return l.nsMachine(other.NS)
		}
		return l.nsMachine(e.NS)
	}
	return end(k.A, k.B), end(k.B, k.A)
}

// vniUse is one tunnel's VNI and where the file decides it.
type vniUse struct {
	vni  int
	what string
	pos  Pos
	path string
}

// tunnelVNIs lists the VNI of every tunnel the lab will have: each link
// between machines, and each stretched bridge. A VNI not given is derived
// from the lab's name and the link's (or bridge's), the same on every
// machine and stable across runs.
func tunnelVNIs(lab *Lab) []vniUse {
	var out []vniUse
	for _, k := range lab.Links {
		if a, b := lab.linkMachines(k); a == b {
			continue
		}
		v, at, path := k.VNI, k.VNIPos, ifacePath(k.A.End)+".vni"
		if v == 0 {
			v, at, path = deriveVNI(lab.Name, "link "+linkID(k)), k.A.Pos, ifacePath(k.A.End)
		}
		out = append(out, vniUse{v, "link " + k.A.String() + " - " + k.B.String(), at, path})
	}
	for _, b := range lab.Bridges {
		if len(b.Machines) < 2 {
			continue
		}
		v := b.VNI
		if v == 0 {
			v = deriveVNI(lab.Name, "bridge "+b.Name)
		}
		out = append(out, vniUse{v, "bridge " + b.Name, b.Pos, "bridges." + b.Name})
	}
	return out
}

// checkVNIs refuses two tunnels with one VNI: the kernel delivers VXLAN
// packets to the device of their VNI, so two would take each other's.
func checkVNIs(lab *Lab) ErrorList {
	var errs ErrorList
	seen := map[int]vniUse{}
	for _, u := range tunnelVNIs(lab) {
		if o, dup := seen[u.vni]; dup {
			errs = append(errs, &Error{File: lab.File, Pos: u.pos, Path: u.path,
				Msg: fmt.Sprintf("VNI %d of %s is also the VNI of %s (line %d): give one of them another vni:", u.vni, u.what, o.what, o.pos.Line)})
			continue
		}
		seen[u.vni] = u
	}
	return errs
}

// ifacePath is the key path of a namespace's (or the host's) interface.
func ifacePath(e End) string {
	if e.NS == Host {
		return "host.interfaces." + e.Name
	}
	return "namespaces." + e.NS + ".interfaces." + e.Name
}

func linkID(k *Link) string { return k.A.String() + "|" + k.B.String() }

// deriveVNI hashes the lab's name and a tunnel's identity into 1..2^24-1.
func deriveVNI(lab, id string) int {
	h := fnv.New32a()
	h.Write([]byte(lab + "\x00" + id))
	return int(h.Sum32()%(maxVNI-1)) + 1
}

// meshName is the name of a stretched bridge's tunnel port on each of its
// machines: "vx" and 8 hex digits of the lab's and bridge's names, so
// prefixed copies of a lab get their own.
func meshName(lab, bridge string) string {
	h := fnv.New32a()
	h.Write([]byte(lab + "\x00" + bridge))
	return fmt.Sprintf("vx%08x", h.Sum32())
}

// MachineWithAddress returns the lab's machine whose address is among
// addrs (the addresses of this machine's interfaces): how up finds its part
// when not told. It fails when none or several are.
func (l *Lab) MachineWithAddress(addrs []netip.Addr) (*Machine, error) {
	var found []*Machine
	for _, m := range l.Machines {
		if slices.Contains(addrs, m.Address) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		var list []string
		for _, m := range l.Machines {
			list = append(list, m.Name+" "+m.Address.String())
		}
		return nil, fmt.Errorf("lab %s spans machines (%s), and none of their addresses is on this machine: give --machine NAME", l.Name, strings.Join(list, ", "))
	}
	var names []string
	for _, m := range found {
		names = append(names, m.Name)
	}
	return nil, fmt.Errorf("lab %s: the addresses of machines %s are all on this machine: give --machine NAME", l.Name, strings.Join(names, " and "))
}

// ForMachine returns the part of a lab that machine brings up: its
// namespaces and bridges, the links between them, a Tunnel for each end of
// a link to another machine here (and a port for each stretched bridge's
// mesh), the expectations whose source is here, and what the other
// machines have (Remote). A lab without machines is returned as it is
// (machine must then be ""). Call it after ApplyPrefix: tunnel names and
// VNIs derive from the lab's name.
func ForMachine(lab *Lab, machine string) (*Lab, error) {
	if len(lab.Machines) == 0 {
		if machine != "" {
			return nil, fmt.Errorf("lab %s names no machines: (it has no machine %s)", lab.Name, machine)
		}
		return lab, nil
	}
	me := lab.MachineByName(machine)
	if me == nil {
		return nil, fmt.Errorf("lab %s has no machine %s (machines: %s)", lab.Name, machine, strings.Join(lab.machineNames(), ", "))
	}
	if errs := checkVNIs(lab); len(errs) > 0 {
		return nil, errs
	}
	vni := map[string]int{}
	for _, u := range tunnelVNIs(lab) {
		vni[u.what] = u.vni
	}
	part := *lab
	part.Machine = machine
	part.Namespaces, part.Bridges, part.Links, part.Tunnels, part.Remote, part.Expect, part.Elsewhere = nil, nil, nil, nil, nil, nil, nil
	part.nsIndex = nil
	for _, ns := range lab.Namespaces {
		if ns.Machine == machine {
			part.Namespaces = append(part.Namespaces, ns)
		} else {
			part.Remote = append(part.Remote, RemotePart{Kind: "namespace", Name: ns.Name, Machine: ns.Machine, Address: lab.MachineByName(ns.Machine).Address,
				Addresses: ns.Addresses()})
		}
	}
	bridges := map[string]*Bridge{}
	for _, b := range lab.Bridges {
		if !slices.Contains(b.Machines, machine) {
			part.Remote = append(part.Remote, RemotePart{Kind: "bridge", Name: b.Name, Machine: b.Machines[0], Address: lab.MachineByName(b.Machines[0]).Address})
			continue
		}
		c := *b
		c.Ports = nil
		bridges[b.Name] = &c
		part.Bridges = append(part.Bridges, &c)
	}
	tunnel := func(e LinkEnd, far End, farMachine string, v int) *Tunnel {
		t := &Tunnel{Name: e.Name, NS: e.NS, Bridge: e.Bridge, VNI: v, Local: me.Address, Dev: me.Interface,
			Remotes: []netip.Addr{lab.MachineByName(farMachine).Address}, To: far.String() + " on machine " + farMachine, Far: far,
			Addresses: e.Addresses, MAC: e.MAC, MTU: e.MTU, Pos: e.Pos, Path: e.String()}
		if e.Bridge != "" {
			t.NS = Host
		}
		return t
	}
	var hostIfaces []string
	for _, k := range lab.Links {
		ma, mb := lab.linkMachines(k)
		switch {
		case ma == machine && mb == machine:
			part.Links = append(part.Links, k)
			for _, e := range []LinkEnd{k.A, k.B} {
				if e.NS == Host && e.Bridge == "" {
					hostIfaces = append(hostIfaces, e.Name)
				}
			}
		case ma == machine:
			part.Tunnels = append(part.Tunnels, tunnel(k.A, k.B.End, mb, vni["link "+k.A.String()+" - "+k.B.String()]))
		case mb == machine:
			part.Tunnels = append(part.Tunnels, tunnel(k.B, k.A.End, ma, vni["link "+k.A.String()+" - "+k.B.String()]))
		}
	}
	// Bridge ports: the local veths' and the tunnels', in the file's order
	// (and OpenFlow numbers); then a stretched bridge's mesh port.
	for _, b := range lab.Bridges {
		c := bridges[b.Name]
		if c == nil {
			continue
		}
		next := 0
		for _, pt := range b.Ports {
			next = max(next, pt.OFPort)
			if pt.Internal {
				// No namespace behind it: on each machine of its bridge.
				if slices.Contains(b.Machines, machine) {
					c.Ports = append(c.Ports, pt)
				}
				continue
			}
			peerHere := lab.nsMachine(pt.Peer.NS) == machine
			if peerHere && slices.Contains(b.Machines, machine) {
				c.Ports = append(c.Ports, pt)
				continue
			}
			if !peerHere && !slices.Contains(b.Machines, lab.nsMachine(pt.Peer.NS)) && b.Machines[0] == machine {
				tp := *pt
				tp.Tunnel = true
				c.Ports = append(c.Ports, &tp)
			}
		}
		for _, x := range b.External {
			next = max(next, x.OFPort)
		}
		if len(b.Machines) < 2 {
			continue
		}
		t := &Tunnel{Name: meshName(lab.Name, b.Name), NS: Host, Bridge: b.Name, VNI: vni["bridge "+b.Name], Local: me.Address, Dev: me.Interface,
			Pos: b.Pos, Path: "bridges." + b.Name}
		var others []string
		for _, m := range b.Machines {
			if m != machine {
				t.Remotes = append(t.Remotes, lab.MachineByName(m).Address)
				others = append(others, m)
			}
		}
		t.To = "bridge " + b.Name + " on machine " + strings.Join(others, ", ")
		part.Tunnels = append(part.Tunnels, t)
		c.Ports = append(c.Ports, &Port{Name: t.Name, OFPort: next + 1, Peer: End{NS: Host, Name: t.Name}, Pos: b.Pos, Tunnel: true})
	}
	// The host is on every machine; its veth ends are where their peers are.
	host := *lab.Host
	host.Interfaces = nil
	for _, i := range lab.Host.Interfaces {
		if slices.Contains(hostIfaces, i.Name) {
			host.Interfaces = append(host.Interfaces, i)
		}
	}
	part.Host = &host
	for _, x := range lab.Expect {
		if m := lab.nsMachine(x.From); m == "" || m == machine {
			part.Expect = append(part.Expect, x)
		} else {
			part.Elsewhere = append(part.Elsewhere, x)
		}
	}
	part.indexNamespaces()
	return &part, nil
}
