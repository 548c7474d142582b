package plan

import (
	"fmt"
	"slices"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// ReflectorVnetHdr says whether reflector TUNs use IFF_VNET_HDR with TUN
// offloads: the kernel then hands the reflector 64 KiB GSO super-packets,
// which it swaps and writes back with the same virtio header.
const ReflectorVnetHdr = true

// ProcessSpec is the canonical argument list of the process netlab runs on a
// TUN (after `netlab reflect --ns NS --dev DEV`); the plan compares it with
// the running process's to decide on a restart.
func ProcessSpec(t *topology.TUN, cpus int) string {
	if t.UDP != nil {
		ns := t.UDP.Namespace
		if ns == "" {
			ns = topology.Host
		}
		return fmt.Sprintf("--udp-listen %s --udp-send %s --udp-ns %s", t.UDP.Listen, t.UDP.Send, ns) + cpusArg(t.CPUs)
	}
	q := t.Queues
	if q == 0 {
		n := cpus
		if len(t.CPUs) > 0 {
			n = len(t.CPUs) // one reader per CPU the reflector may use
		}
		q = min(max(n, 1), topology.MaxQueues)
	}
	s := fmt.Sprintf("--queues %d", q)
	if ReflectorVnetHdr {
		s += " --vnet-hdr"
	}
	if t.Log {
		s += " --log"
	}
	return s + cpusArg(t.CPUs)
}

// cpusArg is the --cpus argument for a TUN's cpus, "" for none, in the
// kernel's list format the reflector parses back (topology.ParseCPUList).
func cpusArg(cpus []int) string {
	if len(cpus) == 0 {
		return ""
	}
	return " --cpus " + topology.FormatCPUList(cpus)
}

// checkCPUs fails, naming the field, for a TUN whose cpus name a CPU that
// is not online here (sched_setaffinity would refuse the set, or silently
// use fewer CPUs than the file says). Unchecked when the snapshot does not
// know the machine's CPUs.
func checkCPUs(lab *topology.Lab, online []int) error {
	if online == nil {
		return nil
	}
	var errs topology.ErrorList
	for _, ns := range lab.Namespaces {
		for _, t := range ns.TUNs {
			for _, c := range t.CPUs {
				if !slices.Contains(online, c) {
					errs = append(errs, &topology.Error{File: lab.File, Pos: t.CPUsPos, Path: t.Path + ".cpus",
						Msg: fmt.Sprintf("CPU %d is not online on this machine (online: %s)", c, topology.FormatCPUList(online))})
				}
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// stopProcesses stops supervised processes the file no longer wants, or
// wants with another spec (they are started again later in the plan), and
// those whose device is made again.
func (p *planner) stopProcesses(cpus int) {
	for _, nsName := range state.SortedNames(p.snap.Namespaces) {
		o := p.snap.Namespaces[nsName]
		for _, dev := range state.SortedNames(o.Processes) {
			pr := o.Processes[dev]
			if pr.Program == state.ProgramEmulate {
				p.stopEmulator(nsName, dev, pr)
				continue
			}
			w := p.want[nsName][dev]
			if w == nil || w.tun == nil || !w.tun.Supervised() || ProcessSpec(w.tun, cpus) != pr.Spec || p.exists(nsName, dev) == nil {
				p.emit(StopProcess{NS: nsName, Link: dev, Spec: pr.Spec})
			}
		}
	}
}

// processes starts the supervised processes that are not running (never
// started, died, or stopped above for a new spec).
func (p *planner) processes(cpus int) {
	for _, ns := range p.lab.Namespaces {
		o := p.snap.Namespaces[ns.Name]
		for _, t := range ns.TUNs {
			if !t.Supervised() {
				continue
			}
			spec := ProcessSpec(t, cpus)
			if o != nil && o.Processes[t.Name] != nil && o.Processes[t.Name].Spec == spec && p.exists(ns.Name, t.Name) != nil {
				continue
			}
			p.emit(StartProcess{NS: ns.Name, Link: t.Name, Spec: spec})
		}
	}
}
