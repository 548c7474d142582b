package graph

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netlab-dev/netlab/topology"
)

// Colours: namespaces blue and rounded, bridges amber and square with their
// ports as jacks, the host a dashed grey frame around what lives in it.
const (
	nsFill     = "#eaf2fb"
	nsLine     = "#3b6ea5"
	brFill     = "#fff3dc"
	brLine     = "#b86e00"
	hostFill   = "#f6f6f6"
	hostLine   = "#8c8c8c"
	markColour = "#b03a2e"
	noteColour = "#555555"
	fontFamily = "Helvetica,Arial,sans-serif"
)

// DOT returns the lab as a Graphviz graph, laid out left to right:
// namespaces as rounded boxes listing their interfaces, addresses, routes and
// marks; bridges as square boxes with a jack per port; the host as a dashed
// frame around the bridges and host veth ends; every veth pair as an edge
// labelled with its two interface names.
//
// Equivalent to: `netlab graph LAB --format dot`; render with `dot -Tsvg`.
func DOT(lab *topology.Lab, o Options) string {
	v := newView(lab, o)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("// lab %s, drawn by `netlab graph`; render with `dot -Tsvg`.\n", lab.Name)
	w("graph %s {\n", dotID("lab:"+lab.Name))
	w("\tgraph [rankdir=LR, nodesep=0.25, ranksep=0.7, pad=0.2, fontname=%q, fontsize=12, labelloc=t, labeljust=l, label=<lab <b>%s</b>>];\n", fontFamily, html(lab.Name))
	w("\tnode [shape=plain, fontname=%q, fontsize=10];\n", fontFamily)
	w("\tedge [fontname=%q, fontsize=8, fontcolor=%q, color=%q, penwidth=1.2];\n", fontFamily, noteColour, noteColour)

	for _, n := range lab.Namespaces {
		w("\n\t%s [label=<%s>];\n", nodeID(kindNS, n.Name), lines(nsTable(n, v.o.Marks[n.Name]), 1))
	}

	if v.showHost {
		h := v.host()
		w("\n\tsubgraph %s {\n", dotID("cluster_host"))
		w("\t\tgraph [style=\"rounded,dashed\", color=%q, bgcolor=%q, margin=10, label=<%s>];\n", hostLine, hostFill, lines(hostLabel(h, v.o.Marks[topology.Host]), 2))
		if len(v.hostEnds) > 0 {
			w("\t\t%s [label=<%s>];\n", nodeID(kindHost, topology.Host), lines(hostTable(v.hostEnds), 2))
		} else if len(lab.Bridges) == 0 {
			// A cluster with no node is not drawn; keep the frame and its label.
			w("\t\t%s [shape=point, style=invis];\n", nodeID(kindHost, topology.Host))
		}
		for _, br := range lab.Bridges {
			w("\t\t%s [label=<%s>];\n", nodeID(kindBridge, br.Name), lines(bridgeTable(br), 2))
		}
		w("\t}\n")
	}

	if len(v.edges) > 0 {
		w("\n")
	}
	for _, e := range v.edges {
		w("\t%s -- %s [label=<%s>];\n", endID(e.tail, "e"), endID(e.head, "w"), html(e.label()))
	}
	w("}\n")
	return b.String()
}

// lines puts each row of an HTML table label on a line of its own, indented
// below a statement at depth tabs, so golden diffs show which row changed.
// Graphviz ignores whitespace between the tags of a table.
func lines(table string, depth int) string {
	in := "\n" + strings.Repeat("\t", depth)
	table = strings.ReplaceAll(table, "<tr>", in+"\t<tr>")
	return strings.TrimSuffix(table, "</table>") + in + "</table>"
}

// nsTable is a namespace's HTML label: name, marks, one row per interface
// (a port the edges attach to), then routes in small text.
func nsTable(n *topology.Namespace, marks []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<table border="1" cellborder="0" cellspacing="0" cellpadding="3" style="rounded" bgcolor=%q color=%q>`, nsFill, nsLine)
	fmt.Fprintf(&b, `<tr><td align="left" colspan="2"><b>%s</b></td></tr>`, html(n.Name))
	for _, m := range marks {
		fmt.Fprintf(&b, `<tr><td align="left" colspan="2"><font color=%q><b>%s</b></font></td></tr>`, markColour, html(m))
	}
	for i, ifc := range n.Interfaces {
		b.WriteString(ifaceRow(i, ifc.Name, ifc.Addresses))
	}
	b.WriteString(notesRow(routeLines(n.Routes)))
	b.WriteString(`</table>`)
	return b.String()
}

// hostTable is the node holding the host's veth ends.
func hostTable(ends []hostEnd) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<table border="1" cellborder="0" cellspacing="0" cellpadding="3" style="rounded" bgcolor="white" color=%q>`, hostLine)
	for i, e := range ends {
		b.WriteString(ifaceRow(i, e.Name, e.Addresses))
	}
	b.WriteString(`</table>`)
	return b.String()
}

// hostLabel is the host frame's label: name, marks, routes and sysctls.
func hostLabel(h *topology.Namespace, marks []string) string {
	var b strings.Builder
	b.WriteString(`<table border="0" cellspacing="0" cellpadding="1">`)
	b.WriteString(`<tr><td align="left"><b>host</b></td></tr>`)
	for _, m := range marks {
		fmt.Fprintf(&b, `<tr><td align="left"><font color=%q><b>%s</b></font></td></tr>`, markColour, html(m))
	}
	lines := routeLines(h.Routes)
	for _, s := range h.Sysctls {
		lines = append(lines, sysctlText(s))
	}
	b.WriteString(notesRow(lines))
	b.WriteString(`</table>`)
	return b.String()
}

// bridgeTable is a bridge's HTML label: a column of port jacks (the ports
// edges attach to) beside the bridge's name, kind, flows and addresses.
func bridgeTable(br *topology.Bridge) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<table border="2" cellborder="0" cellspacing="3" cellpadding="3" bgcolor=%q color=%q>`, brFill, brLine)
	info := []string{fmt.Sprintf(`<b>%s</b>`, html(br.Name)), html(bridgeSummary(br))}
	if f := bridgeFlows(br); f != "" {
		info = append(info, html(f))
	}
	for _, a := range br.Addresses {
		info = append(info, html(a.String()))
	}
	infoCell := fmt.Sprintf(`<td align="left" valign="top"%s>%s<br align="left"/></td>`, rowspan(len(br.Ports)), strings.Join(info, `<br align="left"/>`))
	if len(br.Ports) == 0 {
		fmt.Fprintf(&b, `<tr>%s</tr>`, infoCell)
	}
	for i, p := range br.Ports {
		fmt.Fprintf(&b, `<tr><td port="p%d" border="1" bgcolor="white" color=%q align="left"><font point-size="9">%s</font></td>`, i, brLine, html(portName(p)))
		if i == 0 {
			b.WriteString(infoCell)
		}
		b.WriteString(`</tr>`)
	}
	b.WriteString(`</table>`)
	return b.String()
}

func rowspan(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(` rowspan="%d"`, n)
}

// ifaceRow is one interface: its name, then its addresses. Each cell is a
// port, so an edge leaving to the right starts at the addresses' (east) side
// and one arriving from the left ends at the name's (west) side: edges end
// on the node's border, never across its text.
func ifaceRow(i int, name string, addrs []netip.Prefix) string {
	as := make([]string, len(addrs))
	for j, a := range addrs {
		as[j] = html(a.String())
	}
	return fmt.Sprintf(`<tr><td port="i%dw" align="left" valign="top"><font color=%q>%s</font></td><td port="i%de" align="left" balign="left">%s</td></tr>`,
		i, nsLine, html(name), i, strings.Join(as, `<br/>`))
}

// notesRow is small grey text, one line each; "" for no lines.
func notesRow(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	for i, l := range lines {
		lines[i] = html(l)
	}
	return fmt.Sprintf(`<tr><td align="left" colspan="2"><font point-size="8" color=%q>%s<br align="left"/></font></td></tr>`, noteColour, strings.Join(lines, `<br align="left"/>`))
}

func routeLines(routes []topology.Route) []string {
	out := make([]string, 0, len(routes))
	for _, r := range routes {
		out = append(out, r.String())
	}
	return out
}

// nodeID names a node by kind and name: "ns:blue", "br:ovsbr0", "host:host".
func nodeID(kind, name string) string { return dotID(kind + ":" + name) }

// endID is a node and the port an edge attaches to: "ns:blue":i0e, the
// east side of blue's first interface. side is "e" for an edge's tail (drawn
// on the left, so the edge leaves eastwards) and "w" for its head. A bridge
// has one port per jack, on its west side.
func endID(a attach, side string) string {
	port := fmt.Sprintf("i%d%s", a.row, side)
	if a.kind == kindBridge {
		port = fmt.Sprintf("p%d", a.row)
	}
	return nodeID(a.kind, a.node) + ":" + port
}

// dotID is a quoted DOT identifier. DOT's only escape in a quoted string is
// \", so a name ending in a backslash cannot be written as such; bytes
// outside [A-Za-z0-9_.:-] are written as %XX instead, which keeps IDs unique
// because interface names cannot contain '%'. Labels carry the real names.
func dotID(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || strings.IndexByte("_.:-", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// html escapes text for a Graphviz HTML-like label.
func html(s string) string {
	return htmlEscaper.Replace(s)
}

var htmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")
