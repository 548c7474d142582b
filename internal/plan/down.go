package plan

import (
	"fmt"
	"slices"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// DownInput is what Down needs: no topology file, only the lab's journal
// and what was observed of the lab (its marked objects, and those the
// journal names).
type DownInput struct {
	Lab      string
	Journal  *state.Journal // may be empty, never nil
	Snapshot *state.Snapshot
}

// Down computes the plan that removes everything of the lab, and what it
// leaves alone: objects the journal names that carry someone else's marker
// (or none, where an interrupted run is not the explanation). It is the
// deletion half of Make with nothing wanted, in the same order: the lab's
// processes (reflectors, then everything running in its namespaces), the
// user's interfaces given back, the lab's OVS ports and bridges, its host
// links, its namespaces, its host NAT table, and the host sysctls back to
// their saved values. Like Make it is pure.
func Down(in DownInput) (Plan, []string) {
	lab, j, snap := in.Lab, in.Journal, in.Snapshot
	var p Plan
	var left []string
	emit := func(s Step) { p = append(p, Action{Step: s, Lab: lab}) }

	// Timelines' runners first: they would change the lab while it goes.
	for _, name := range state.SortedNames(snap.Timelines) {
		if snap.Timelines[name].Supervisor != 0 {
			emit(StopTimeline{Name: name})
		}
	}

	// Services: their supervisors run in the host namespace (their
	// programs in the lab's), and would start the programs again.
	for _, ns := range state.SortedNames(snap.Namespaces) {
		for _, name := range state.SortedNames(snap.Namespaces[ns].Services) {
			emit(StopService{NS: ns, Name: name})
		}
	}

	// Reflectors and UDP bridges: they run in the host namespace, so
	// ending the processes in the lab's namespaces would not reach them.
	for _, ns := range state.SortedNames(snap.Namespaces) {
		for _, dev := range state.SortedNames(snap.Namespaces[ns].Processes) {
			pr := snap.Namespaces[ns].Processes[dev]
			emit(StopProcess{NS: ns, Link: dev, Spec: pr.Spec, Program: pr.Program})
		}
	}

	// The user's interfaces, given back as they were.
	host := snap.Namespaces[topology.Host]
	for _, name := range state.SortedNames(j.External) {
		prev := j.External[name]
		typ := topology.BridgeOVS
		if b := snap.Bridges[prev.Bridge]; b != nil && b.Type == topology.BridgeLinux {
			typ = topology.BridgeLinux
		} else if host != nil && host.Links[name] != nil && host.Links[name].Master == prev.Bridge {
			typ = topology.BridgeLinux
		}
		emit(DetachExternal{Bridge: prev.Bridge, Link: name, BridgeType: typ})
	}

	// OVS: the lab's ports on other bridges, then the lab's bridges (their
	// ports go with them), before the namespaces: a port whose device
	// vanished first makes Open vSwitch complain.
	for _, name := range state.SortedNames(snap.Bridges) {
		b := snap.Bridges[name]
		if b.Type != topology.BridgeOVS || b.Owner == lab {
			continue
		}
		var ports []Port
		for _, pn := range state.SortedNames(b.Ports) {
			if b.Ports[pn].Owner == lab && j.External[pn].Bridge == "" {
				ports = append(ports, Port{Name: pn})
			}
		}
		if len(ports) > 0 {
			emit(DelPorts{Bridge: name, Ports: ports})
		}
		if slices.Contains(j.Bridges, name) {
			left = append(left, fmt.Sprintf("ovs bridge %s: %s", name, ownerText(b.Owner)))
		}
	}
	for _, name := range state.SortedNames(snap.Bridges) {
		if b := snap.Bridges[name]; b.Type == topology.BridgeOVS && b.Owner == lab {
			emit(DelBridge{Bridge: name})
		}
	}

	// Namespaces: marked with the lab, or journaled and holding nothing
	// but lo (an interrupted run made it and died before marking it). The
	// processes inside go first: one keeps a namespace, and its devices,
	// alive after its name is gone.
	var doomed []string
	nsJournaled := setOf(j.Namespaces) // a lookup each, not a walk each: labs of 10,000
	for _, name := range state.SortedNames(snap.Namespaces) {
		o := snap.Namespaces[name]
		if name == topology.Host {
			continue
		}
		journaled := nsJournaled[name]
		switch {
		case o.Owner == lab, journaled && o.Owner == "" && o.OnlyLoopback():
			doomed = append(doomed, name)
		case journaled:
			left = append(left, fmt.Sprintf("namespace %s: %s", name, ownerText(o.Owner)))
		}
	}
	if len(doomed) > 0 {
		emit(StopNSProcesses{Namespaces: doomed})
	}

	// Host links, before the namespaces: the lab's (veth ends, whose peers
	// in the namespaces go with them; Linux bridges; VXLAN devices), the
	// journaled ones an interrupted run left unmarked, and the devices a
	// dead ovs-vswitchd left for the lab's bridges. One deletion for all:
	// the kernel unregisters them together and waits for RCU once, where a
	// deletion each waits once each. Left to the namespaces instead, the
	// veths would go only when the kernel's asynchronous namespace cleanup
	// runs, which down would then have to wait out to leave no residue.
	if host != nil {
		// The lab's host routes through devices it does not remove: a
		// route through one of its own links goes with the link.
		for _, r := range host.Routes {
			if slices.ContainsFunc(j.HostRoutes, func(jr state.Route) bool { return sameRoute(jr, r) }) && !ownHostLink(lab, snap, r.Dev) {
				r := r
				emit(DelRoute{NS: topology.Host, Route: &r})
			}
		}
		var links []string
		hostJournaled := setOf(j.HostLinks)
		for _, name := range state.SortedNames(host.Links) {
			l := host.Links[name]
			if b := snap.Bridges[name]; b != nil && b.Type == topology.BridgeOVS {
				continue // an OVS bridge's own port: it goes with its bridge
			}
			unmarked := l.Alias == ""
			switch {
			case l.Owner() == lab,
				unmarked && hostJournaled[name] && state.CrashLeftoverKind(l.Kind),
				unmarked && slices.Contains(j.Bridges, name) && l.Kind == state.KindTuntap:
				links = append(links, name)
			case hostJournaled[name] && l.Owner() != "":
				left = append(left, fmt.Sprintf("interface %s: %s", name, ownerText(l.Owner())))
			}
		}
		switch len(links) {
		case 0:
		case 1:
			emit(DelLink{NS: topology.Host, Link: links[0]})
		default:
			emit(DelLinks{NS: topology.Host, Links: links})
		}
	}
	for _, name := range doomed {
		emit(DelNamespace{NS: name})
	}

	if host != nil {
		if host.NAT != nil {
			emit(DelNAT{NS: topology.Host})
		}
		if host.Loss != nil {
			// Loss rules of host-side interfaces; a lab namespace's table
			// and every qdisc go with their namespace and links.
			emit(DelLoss{NS: topology.Host})
		}
		// Every host sysctl the lab holds is let go of, whatever its value
		// now: the machine's ledger must not keep a lab that is gone. The
		// value goes back when no other lab holds the key.
		for _, key := range state.SortedNames(j.HostSysctls) {
			emit(RestoreSysctl{NS: topology.Host, Key: key, Value: j.HostSysctls[key], HeldBy: state.SortedNames(snap.SysctlHolders[key])})
		}
	}
	sortDown(p)
	return p, left
}

// ownHostLink says whether a host device is the lab's: a link with its
// marker, or the own port of one of its OVS bridges.
func ownHostLink(lab string, snap *state.Snapshot, dev string) bool {
	if b := snap.Bridges[dev]; b != nil && b.Owner == lab {
		return true
	}
	host := snap.Namespaces[topology.Host]
	return dev != "" && host != nil && host.Links[dev] != nil && host.Links[dev].Owner() == lab
}

// setOf is a list's members, for lookups.
func setOf(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}
