package graph

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netlab-dev/netlab/topology"
)

// Mermaid returns the lab as a Mermaid flowchart (graph LR), which GitHub
// renders inside a ```mermaid block: the same picture as DOT, with
// namespaces as rounded boxes, bridges as hexagons, the host as a subgraph
// around the bridges and a node for its own interfaces, routes and sysctls,
// and every veth pair as an edge labelled with its two interface names.
//
// Equivalent to: `netlab graph LAB --format mermaid`.
func Mermaid(lab *topology.Lab, o Options) string {
	v := newView(lab, o)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("%%%% lab %s, drawn by `netlab graph`\n", lab.Name)
	w("graph LR\n")
	var nsIDs, brIDs []string
	for _, n := range lab.Namespaces {
		lines := []string{"<b>" + mmd(n.Name) + "</b>"}
		lines = append(lines, markLines(v.o.Marks[n.Name])...)
		for _, ifc := range n.Interfaces {
			lines = append(lines, ifaceLine(ifc.Name, ifc.Addresses))
		}
		lines = append(lines, smallLines(routeLines(n.Routes))...)
		id := mermaidID(kindNS, n.Name)
		nsIDs = append(nsIDs, id)
		w("    %s(\"%s\")\n", id, strings.Join(lines, "<br/>"))
	}

	hostNode := false
	if v.showHost {
		h := v.host()
		w("    subgraph %s [\"host\"]\n", mermaidID(kindHost, "frame"))
		var lines []string
		lines = append(lines, markLines(v.o.Marks[topology.Host])...)
		for _, e := range v.hostEnds {
			lines = append(lines, ifaceLine(e.Name, e.Addresses))
		}
		notes := routeLines(h.Routes)
		for _, s := range h.Sysctls {
			notes = append(notes, sysctlText(s))
		}
		lines = append(lines, smallLines(notes)...)
		if len(lines) > 0 || len(lab.Bridges) == 0 {
			hostNode = true
			lines = append([]string{"<b>host</b>"}, lines...)
			w("        %s[\"%s\"]\n", mermaidID(kindHost, topology.Host), strings.Join(lines, "<br/>"))
		}
		for _, br := range lab.Bridges {
			lines := []string{"<b>" + mmd(br.Name) + "</b>", mmd(bridgeSummary(br))}
			if f := bridgeFlows(br); f != "" {
				lines = append(lines, mmd(f))
			}
			for _, a := range br.Addresses {
				lines = append(lines, mmd(a.String()))
			}
			var ports []string
			for _, p := range br.Ports {
				ports = append(ports, mmd(portName(p)))
			}
			if len(ports) > 0 {
				lines = append(lines, "<small>ports "+strings.Join(ports, ", ")+"</small>")
			}
			id := mermaidID(kindBridge, br.Name)
			brIDs = append(brIDs, id)
			w("        %s{{\"%s\"}}\n", id, strings.Join(lines, "<br/>"))
		}
		w("    end\n")
	}

	for _, e := range v.edges {
		w("    %s ---|\"%s\"| %s\n", mermaidID(e.tail.kind, e.tail.node), mmd(e.label()), mermaidID(e.head.kind, e.head.node))
	}

	if len(nsIDs) > 0 {
		w("    classDef ns fill:%s,stroke:%s,color:#000\n", nsFill, nsLine)
		w("    class %s ns\n", strings.Join(nsIDs, ","))
	}
	if len(brIDs) > 0 {
		w("    classDef bridge fill:%s,stroke:%s,stroke-width:2px,color:#000\n", brFill, brLine)
		w("    class %s bridge\n", strings.Join(brIDs, ","))
	}
	if hostNode {
		w("    classDef hostns fill:#ffffff,stroke:%s,color:#000\n", hostLine)
		w("    class %s hostns\n", mermaidID(kindHost, topology.Host))
	}
	if v.showHost {
		w("    style %s fill:%s,stroke:%s,stroke-dasharray:5 5,color:#000\n", mermaidID(kindHost, "frame"), hostFill, hostLine)
	}
	return b.String()
}

// ifaceLine is "veth1: 10.0.0.1/24, fd00:10::1/64".
func ifaceLine(name string, addrs []netip.Prefix) string {
	s := mmd(name)
	if len(addrs) > 0 {
		as := make([]string, len(addrs))
		for i, a := range addrs {
			as[i] = a.String()
		}
		s += ": " + mmd(strings.Join(as, ", "))
	}
	return s
}

func markLines(marks []string) []string {
	out := make([]string, len(marks))
	for i, m := range marks {
		out[i] = "<b>[" + mmd(m) + "]</b>"
	}
	return out
}

func smallLines(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = "<small>" + mmd(l) + "</small>"
	}
	return out
}

// mermaidID is a Mermaid node ID: kind, '_', then the name with every byte
// outside [A-Za-z0-9] written as _XX, so "gw-1" is ns_gw_2d1. The encoding
// is one-to-one, and the kind prefix keeps IDs off Mermaid's keywords (end,
// graph) and off its edge syntax (an ID starting with o or x after ---).
func mermaidID(kind, name string) string {
	var b strings.Builder
	b.WriteString(kind)
	b.WriteByte('_')
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isAlnum(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}

// mmd escapes text for a quoted Mermaid label, which Mermaid renders as HTML:
// its entity codes (#34; for ") keep quotes, markup and '#' literal.
func mmd(s string) string {
	return mmdEscaper.Replace(s)
}

var mmdEscaper = strings.NewReplacer("#", "#35;", `"`, "#34;", "&", "#38;", "<", "#60;", ">", "#62;")
