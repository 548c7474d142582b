package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/netlab-dev/netlab/internal/engine"
)

// status: netlab status [NAME] [--json].
func (a *app) status(args []string) int {
	fs := a.flags("status", "[NAME|FILE] [--json]")
	prefix := prefixFlag(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	pos, code, ok := positional(fs, args, 0, 1)
	if !ok {
		return code
	}
	if a.sandbox != "" {
		return a.enter("status", args)
	}
	eng := a.engine(io.Discard)
	var labs []string
	if len(pos) == 1 {
		name, code := a.labName(pos[0], *prefix)
		if name == "" {
			return code
		}
		labs = []string{name}
	} else {
		all, err := eng.Labs()
		if err != nil {
			return a.fail("status", err)
		}
		labs = all
	}
	out := []*engine.LabStatus{}
	for _, lab := range labs {
		st, err := eng.Status(lab)
		if err != nil {
			return a.fail("status "+lab, err)
		}
		out = append(out, st)
	}
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return a.fail("status", err)
		}
		return exitOK
	}
	if len(out) == 0 {
		fmt.Fprintln(a.stdout, "no labs running")
	}
	for _, st := range out {
		printStatus(a.stdout, st)
	}
	return exitOK
}

func printStatus(w io.Writer, st *engine.LabStatus) {
	fmt.Fprintf(w, "lab %s", st.Lab)
	if st.File != "" {
		fmt.Fprintf(w, "  (file %s)", st.File)
	}
	if st.Machine != "" {
		fmt.Fprintf(w, "  machine %s's part", st.Machine)
	}
	fmt.Fprintln(w)
	if len(st.Namespaces) == 0 && len(st.Bridges) == 0 {
		fmt.Fprintln(w, "  nothing on the machine")
	}
	for _, b := range st.Bridges {
		var ports []string
		for _, p := range b.Ports {
			var about []string
			if p.OFPort != 0 {
				about = append(about, strconv.Itoa(p.OFPort))
			}
			if p.Type != "" {
				about = append(about, p.Type)
			}
			if p.AFXDPError != "" {
				about = append(about, "AF_XDP failed")
			}
			if p.VLAN != "" {
				about = append(about, "vlan "+p.VLAN)
			}
			if len(about) > 0 {
				ports = append(ports, fmt.Sprintf("%s(%s)", p.Name, strings.Join(about, ", ")))
			} else {
				ports = append(ports, p.Name)
			}
		}
		detail := b.Type
		if b.Datapath != "" {
			detail += ", datapath " + b.Datapath
		}
		if b.FailMode != "" {
			detail += ", fail-mode " + b.FailMode
		}
		if b.VLANFiltering {
			detail += ", vlan_filtering"
		}
		for _, c := range b.Controllers {
			state := "not connected"
			switch {
			case c.Connected:
				state = "connected"
			case strings.HasPrefix(c.Target, "p"): // ptcp:, punix: listen
				state = "listening"
			}
			detail += fmt.Sprintf(", controller %s (%s)", c.Target, state)
		}
		fmt.Fprintf(w, "  bridge %s (%s): ports %s\n", b.Name, detail, strings.Join(ports, " "))
	}
	if o := st.OVS; o != nil && slices.ContainsFunc(st.Bridges, func(b engine.BridgeStatus) bool { return b.Type == "ovs" }) {
		which := "the system's Open vSwitch"
		if o.Private {
			which = "netlab's private Open vSwitch"
		}
		fmt.Fprintf(w, "  open vswitch: %s, run directory %s (netlab ovs %s -- ovs-ofctl dump-flows BRIDGE)\n", which, o.RunDir, st.Lab)
	}
	for _, ns := range st.Namespaces {
		fmt.Fprintf(w, "  namespace %s\n", ns.Name)
		if ns.Name == "host" {
			fmt.Fprintf(w, "    (only the lab's interfaces and routes)\n")
		}
		for _, l := range ns.Links {
			line := fmt.Sprintf("    %-15s %-6s %-5s mtu %-5d %s", l.Name, l.Kind, l.State, l.MTU, l.LinkLayer)
			if l.Master != "" {
				line += " master " + l.Master
			}
			if len(l.Addresses) > 0 {
				line += "  " + strings.Join(l.Addresses, " ")
			}
			line += impairText(l) + linkEventText(l)
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
		for _, r := range ns.Routes {
			fmt.Fprintf(w, "    route %s\n", r)
		}
		for _, p := range ns.Processes {
			fmt.Fprintf(w, "    netlab reflect on %s: pid %d, %d queues, %d packets, %d bytes, %d dropped (%s)\n",
				p.Device, p.PID, p.Queues, p.Packets, p.Bytes, p.Drops, p.Spec)
		}
		for _, r := range ns.NAT {
			fmt.Fprintf(w, "    nat masquerade %s out %s: %d packets, %d bytes\n", r.Source, r.Out, r.Packets, r.Bytes)
		}
		for _, s := range ns.Services {
			line := fmt.Sprintf("    service %s: %s", s.Name, s.State)
			if s.PID != 0 {
				line += fmt.Sprintf(", pid %d", s.PID)
			}
			if s.State == "running" {
				if s.Ready {
					line += ", ready"
				} else {
					line += ", not ready (" + s.Probe + ")"
				}
			}
			if s.Restarts > 0 {
				line += fmt.Sprintf(", restarted %d times", s.Restarts)
			}
			if s.Exit != "" && s.State != "running" {
				line += ", its program " + s.Exit
			}
			fmt.Fprintln(w, line+"; log: netlab logs "+st.Lab+" "+ns.Name+"/"+s.Name)
		}
		if len(ns.PartitionedFrom) > 0 {
			var from []string
			for _, d := range ns.PartitionedFrom {
				from = append(from, fmt.Sprintf("%s (%d)", d.From, d.Packets))
			}
			fmt.Fprintf(w, "    partitioned: input drops packets from %s\n", strings.Join(from, " "))
		}
	}
	for _, t := range st.Tunnels {
		where := t.NS
		if t.Bridge != "" {
			where = "bridge " + t.Bridge
		}
		state := "missing"
		if t.Present {
			state = fmt.Sprintf("mtu %d, %d packets in, %d out", t.MTU, t.RxPackets, t.TxPackets)
		}
		fmt.Fprintf(w, "  tunnel %s (%s) vni %d %s -> %s over %s (mtu %d): to %s; %s\n",
			t.Name, where, t.VNI, t.Local, strings.Join(t.Remotes, ","), t.Underlay, t.UnderlayMTU, t.To, state)
	}
	for _, r := range st.Remote {
		fmt.Fprintf(w, "  remote %s %s on machine %s (%s)\n", r.Kind, r.Name, r.Machine, r.Address)
	}
	printEvents(w, st)
	printTimelines(w, st.Lab, "  ", st.Timelines)
	for _, s := range st.HostSysctls {
		fmt.Fprintf(w, "  host sysctl %s = %s (was %s; restored when the last lab holding it goes down)\n", s.Key, s.Value, s.Previous)
	}
	switch {
	case st.DriftError != "":
		fmt.Fprintf(w, "  drift: unknown (%s)\n", st.DriftError)
	case len(st.Drift) == 0:
		fmt.Fprintln(w, "  drift: none (matches the file)")
	default:
		fmt.Fprintf(w, "  drift: %d actions would make it match the file:\n", len(st.Drift))
		for _, d := range st.Drift {
			fmt.Fprintf(w, "    %s\n", d)
		}
	}
}
