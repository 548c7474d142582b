package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/netlab-dev/netlab/internal/engine"
)

// flows: netlab flows LAB [BRIDGE] [--json]: the flow tables with packet
// counts, and the learned MAC table as MAC -> port -> namespace/interface.
func (a *app) flows(args []string) int {
	fs := a.flags("flows", "LAB [BRIDGE] [--json]")
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, code, ok := positional(fs, args, 1, 2)
	if !ok {
		return code
	}
	if a.sandbox != "" {
		return a.enter("flows", args)
	}
	name, code := a.labName(pos[0], "")
	if name == "" {
		return code
	}
	bridge := ""
	if len(pos) == 2 {
		bridge = pos[1]
	}
	out, err := a.engine(nil).Flows(name, bridge)
	if err != nil {
		return a.fail("flows "+name, err)
	}
	if *asJSON {
		if out == nil {
			out = []engine.BridgeFlows{}
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return a.fail("flows", err)
		}
		return exitOK
	}
	if len(out) == 0 {
		fmt.Fprintf(a.stdout, "lab %s has no Open vSwitch bridge\n", name)
	}
	for _, b := range out {
		printFlows(a.stdout, b)
	}
	return exitOK
}

func printFlows(w io.Writer, b engine.BridgeFlows) {
	fmt.Fprintf(w, "bridge %s: %d flows\n", b.Bridge, len(b.Flows))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  table\tprio\towner\tpackets\tmatch\tactions")
	for _, f := range b.Flows {
		match := f.Match
		if match == "" {
			match = "*"
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%d\t%s\t%s\n", f.Table, f.Priority, f.Owner, f.Packets, match, f.Actions)
	}
	tw.Flush()
	fmt.Fprintf(w, "learned MACs (made by the lab's learn() actions): %d\n", len(b.MACs))
	if len(b.MACs) == 0 {
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  table\tvlan\tmac\tport\tinterface\tidle")
	for _, m := range b.MACs {
		where := m.PortName
		if m.Namespace != "" {
			where += " -> " + strings.TrimSuffix(m.Namespace+"/"+m.Interface, "/")
		}
		port := fmt.Sprint(m.Port)
		if m.Port == 0xffff {
			port = "LOCAL"
		}
		vlan := "-"
		if m.VLAN != 0 {
			vlan = fmt.Sprint(m.VLAN)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%ds\n", m.Table, vlan, m.MAC, port, where, m.IdleAge)
	}
	tw.Flush()
}
