// Package graph draws a lab: it turns a parsed topology into a Graphviz (DOT)
// or Mermaid picture of its namespaces, bridges and veth pairs, for
// `netlab graph`. DOT and Mermaid are pure text functions of the lab and
// deterministic (file order throughout), so their output is golden-tested;
// Render is the one edge that runs a program (Graphviz's dot).
package graph

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netlab-dev/netlab/topology"
)

// Options says what to mark on the picture beyond the topology itself.
type Options struct {
	// Marks adds notes to a namespace node, by namespace name, in the order
	// given: {"gw": {"NAT"}, "refl": {"reflector tun0"}}. The key
	// topology.Host marks the host. Marks for names the lab does not have
	// are ignored.
	Marks map[string][]string
}

// view is the lab as the picture shows it: who is drawn, and where each veth
// end attaches. DOT and Mermaid both draw from it, so they always agree.
type view struct {
	lab *topology.Lab
	o   Options

	showHost  bool
	hostEnds  []hostEnd // host veth ends not on a bridge: host.interfaces, then undescribed ends
	hostIndex map[string]int
	edges     []edge
}

// hostEnd is a veth end in the root namespace that is not a bridge port.
type hostEnd struct {
	Name      string
	Addresses []netip.Prefix
}

// attach is where one veth end is drawn: a node (namespace, bridge or the
// host's interface node) and the row of that node holding the end.
type attach struct {
	kind string // kindNS, kindBridge or kindHost
	node string // namespace or bridge name; topology.Host for the host
	row  int
	name string // interface or port name
}

const (
	kindNS     = "ns"
	kindBridge = "br"
	kindHost   = "host"
)

// edge is one veth pair, oriented for the picture: tail is drawn left of
// head, and the label reads "tail — head".
type edge struct {
	tail, head attach
}

func (e edge) label() string { return e.tail.name + " — " + e.head.name }

func newView(lab *topology.Lab, o Options) *view {
	v := &view{lab: lab, o: o, hostIndex: map[string]int{}}
	host := lab.Host
	if host == nil {
		host = &topology.Namespace{Name: topology.Host}
	}
	for _, ifc := range host.Interfaces {
		v.addHostEnd(hostEnd{Name: ifc.Name, Addresses: ifc.Addresses})
	}
	for _, l := range lab.Links {
		for _, e := range []topology.LinkEnd{l.A, l.B} {
			if e.NS == topology.Host && e.Bridge == "" {
				v.addHostEnd(hostEnd{Name: e.Name, Addresses: e.Addresses})
			}
		}
	}
	v.showHost = len(v.hostEnds)+len(host.Routes)+len(host.Sysctls) > 0 || len(lab.Bridges) > 0
	for _, l := range lab.Links {
		a, b := v.attach(l.A.End), v.attach(l.B.End)
		// Bridges and host ends live in the host, drawn to the right of the
		// namespaces that plug into them.
		if a.kind != kindNS && b.kind == kindNS {
			a, b = b, a
		}
		v.edges = append(v.edges, edge{tail: a, head: b})
	}
	return v
}

func (v *view) addHostEnd(e hostEnd) {
	if _, dup := v.hostIndex[e.Name]; dup {
		return
	}
	v.hostIndex[e.Name] = len(v.hostEnds)
	v.hostEnds = append(v.hostEnds, e)
}

func (v *view) attach(e topology.End) attach {
	switch {
	case e.Bridge != "":
		row := 0
		if b := v.lab.Bridge(e.Bridge); b != nil {
			for i, p := range b.Ports {
				if p.Name == e.Name {
					row = i
				}
			}
		}
		return attach{kind: kindBridge, node: e.Bridge, row: row, name: e.Name}
	case e.NS == topology.Host:
		return attach{kind: kindHost, node: topology.Host, row: v.hostIndex[e.Name], name: e.Name}
	default:
		row := 0
		if n := v.lab.Namespace(e.NS); n != nil {
			for i, ifc := range n.Interfaces {
				if ifc.Name == e.Name {
					row = i
				}
			}
		}
		return attach{kind: kindNS, node: e.NS, row: row, name: e.Name}
	}
}

// host returns the lab's host namespace, never nil.
func (v *view) host() *topology.Namespace {
	if v.lab.Host != nil {
		return v.lab.Host
	}
	return &topology.Namespace{Name: topology.Host}
}

// bridgeSummary is the bridge's kind line: "ovs · standalone",
// "linux".
func bridgeSummary(b *topology.Bridge) string {
	s := b.Type
	if b.Type == topology.BridgeOVS {
		if b.FailMode != "" {
			s += " · " + b.FailMode
		}
		if b.Datapath != "" {
			s += " · " + b.Datapath
		}
	}
	return s
}

// bridgeFlows is the bridge's OpenFlow line, "" when netlab owns no flows.
func bridgeFlows(b *topology.Bridge) string {
	var parts []string
	if b.OpenFlow != "" {
		parts = append(parts, "openflow "+b.OpenFlow)
	}
	if n := len(b.Flows); n > 0 {
		parts = append(parts, fmt.Sprintf("%d flow%s", n, plural(n)))
	}
	return strings.Join(parts, " + ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// portName is a bridge port as the bridge shows it: "veth0", or "veth0 #1"
// with its OpenFlow port number on OVS.
func portName(p *topology.Port) string {
	if p.OFPort > 0 {
		return fmt.Sprintf("%s #%d", p.Name, p.OFPort)
	}
	return p.Name
}

func sysctlText(s topology.Sysctl) string { return s.Key + "=" + s.Value }
