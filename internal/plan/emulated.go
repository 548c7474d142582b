package plan

import (
	"fmt"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// A link netlab makes is carried by the kernel (a veth pair, with tbf,
// netem and nftables for its impairments) or by netlab's userspace link
// emulator (`netlab emulate`: a TAP at each end, a process moving frames
// between them through a model of each direction). The emulator carries a
// link when one of its ends asks for it (emulator: userspace), or asks for
// what only the emulator does (a jitter distribution, Gilbert-Elliott, a
// trace, a queue in bytes without a rate), or for what this kernel cannot
// do (delay without sch_netem, say) — unless an end says emulator: kernel.

// kindEmu is the wanted kind of an end of an emulated link: a TAP the
// emulator attaches to.
const kindEmu = "emu-tap"

// Emulated is a link the userspace emulator carries: its ends, why, and
// which end (if any) is a port of an Open vSwitch bridge, which takes
// whole frames only.
type Emulated struct {
	A, B    topology.LinkEnd
	Why     string
	OVSPort string // "a", "b" or ""
}

// Spec is the emulator's command line past its first end and its files:
// what it is started to carry. Another spec means a restart.
func (e *Emulated) Spec() string {
	s := fmt.Sprintf("--peer-ns %s --peer-dev %s", e.B.NS, e.B.Name)
	if e.OVSPort != "" {
		s += " --ovs-port " + e.OVSPort
	}
	return s
}

// EmulatedLinks decides which of the lab's links the userspace emulator
// carries, given each interface's wanted impairment and what the kernel
// can do (nil: not probed, so everything), and the impair events of the
// lab's timelines (a link one of them needs the emulator on is emulated
// from up on). Links to other machines are tunnels, carried by the kernel.
func EmulatedLinks(lab *topology.Lab, want map[string]map[string]topology.Impair, sup *state.ImpairSupport) []*Emulated {
	var out []*Emulated
	for _, l := range lab.Links {
		ends := []topology.LinkEnd{l.A, l.B}
		kernel := false
		var why []string
		for _, e := range ends {
			im := want[e.NS][e.Name]
			if im.Emulator == topology.EmulatorKernel {
				kernel = true
			}
			if r := EmulatorReason(im, sup); r != "" {
				why = append(why, e.End.String()+": "+r)
			}
			if r := timelineReason(lab, e, sup); r != "" {
				why = append(why, e.End.String()+": "+r)
			}
		}
		if kernel || len(why) == 0 {
			continue
		}
		em := &Emulated{A: l.A, B: l.B, Why: strings.Join(why, "; ")}
		for i, e := range ends {
			if b := lab.Bridge(e.Bridge); b != nil && b.Type == topology.BridgeOVS {
				em.OVSPort = []string{"a", "b"}[i]
			}
		}
		out = append(out, em)
	}
	return out
}

// timelineReason says why an impair event of one of the lab's timelines
// needs the userspace emulator on the end e ("" when none does): such a
// link is emulated from up on, so that the event changes a model in place
// rather than making the link again while the timeline runs.
func timelineReason(lab *topology.Lab, e topology.LinkEnd, sup *state.ImpairSupport) string {
	for _, t := range lab.Timelines {
		for i, ev := range t.Events {
			for _, ii := range ev.Impair {
				if ns, link := TimelineInterface(lab, ii.Interface); ns != e.NS || link != e.Name {
					continue
				}
				if r := EmulatorReason(ii.Impair, sup); r != "" {
					return fmt.Sprintf("timeline %s's event %d: %s", t.Name, i+1, r)
				}
			}
		}
	}
	return ""
}

// TimelineInterface is the interface "ns/iface" of a timeline's event (as
// the file names it) as the machine names it: the lab's prefix before a
// namespace, and before an interface of the host.
func TimelineInterface(lab *topology.Lab, iface string) (ns, link string) {
	ns, link, _ = strings.Cut(iface, "/")
	if lab.Prefix == "" {
		return ns, link
	}
	if ns == topology.Host {
		return ns, lab.Prefix + link
	}
	return lab.Prefix + ns, link
}

// EmulatorReason says why an interface's impairment needs the userspace
// emulator ("" when the kernel can carry it): it asks for it, or for what
// only the emulator does, or for what this kernel lacks.
func EmulatorReason(im topology.Impair, sup *state.ImpairSupport) string {
	if im.Emulator == topology.EmulatorUserspace {
		return "emulator: userspace"
	}
	if im.Emulator == topology.EmulatorKernel {
		return ""
	}
	if f := im.EmulatorFields(); len(f) == 1 {
		return f[0] + " is the userspace emulator's alone"
	} else if len(f) > 1 {
		return strings.Join(f, ", ") + " are the userspace emulator's alone"
	}
	if missing := kernelMissing(im, sup); len(missing) > 0 {
		return strings.Join(missing, "; ")
	}
	return ""
}

// kernelMissing names each part of an impairment this kernel cannot apply,
// with what it lacks.
func kernelMissing(im topology.Impair, sup *state.ImpairSupport) []string {
	if sup == nil {
		return nil
	}
	var out []string
	if !sup.Netem {
		fields := im.NetemFields()
		if im.Limit > 0 && im.Rate == 0 {
			fields = append(fields, "limit without rate")
		}
		if len(fields) > 0 {
			out = append(out, strings.Join(fields, ", ")+" needs sch_netem, which this kernel does not have")
		}
	}
	if im.Rate != 0 && !sup.TBF {
		out = append(out, "rate needs sch_tbf, which this kernel does not have")
	}
	if im.Loss != 0 && !sup.NftEgress {
		out = append(out, "loss needs nftables egress chains, which this kernel does not have")
	}
	return out
}

// emulatedByEnd indexes emulated links by each of their ends ("ns/link").
func emulatedByEnd(emu []*Emulated) map[string]*Emulated {
	out := map[string]*Emulated{}
	for _, e := range emu {
		out[key(e.A.NS, e.A.Name)] = e
		out[key(e.B.NS, e.B.Name)] = e
	}
	return out
}

// emulated returns the emulated link of the end ns/name, or nil.
func (p *planner) emulated(ns, name string) *Emulated { return p.emu[key(ns, name)] }

// wantEmulators decides the emulated links from the wanted impairments
// (the file's, and netlab impair's from the journal).
func wantEmulators(lab *topology.Lab, j *state.Journal, sup *state.ImpairSupport) []*Emulated {
	return EmulatedLinks(lab, WantImpair(lab, j), sup)
}

// emulatorTraces are the traces an emulated link's impairments replay, from
// the lab's (read with its file) and those given (netlab impair's).
func (p *planner) emulatorTraces(ims ...topology.Impair) ([]*topology.Trace, error) {
	var out []*topology.Trace
	for _, im := range ims {
		if im.Trace.IsZero() {
			continue
		}
		t := p.lab.Traces[im.Trace.Sum]
		if t == nil {
			t = p.traces[im.Trace.Sum]
		}
		if t == nil {
			return nil, fmt.Errorf("trace %s (%s) is not loaded", im.Trace.Name, im.Trace.Sum)
		}
		out = append(out, t)
	}
	return out, nil
}

// stopEmulator stops an emulator the lab no longer wants as it runs:
// its link is the kernel's again, its command line changed, or one of its
// TAPs is made again (it holds the old one's queue). Started again later in
// the plan.
func (p *planner) stopEmulator(nsName, dev string, pr *state.Process) {
	e := p.emulated(nsName, dev)
	if e == nil || e.A.NS != nsName || e.A.Name != dev || e.Spec() != pr.Spec ||
		p.exists(e.A.NS, e.A.Name) == nil || p.exists(e.B.NS, e.B.Name) == nil {
		p.emit(StopProcess{NS: nsName, Link: dev, Spec: pr.Spec, Program: state.ProgramEmulate})
	}
}

// emulators starts the emulators that do not run, and gives those that
// run a model they do not have yet (in place: nothing queued is lost).
func (p *planner) emulators() error {
	for _, e := range p.emuList {
		a, b := p.impair[e.A.NS][e.A.Name], p.impair[e.B.NS][e.B.Name]
		traces, err := p.emulatorTraces(a, b)
		if err != nil {
			return err
		}
		var pr *state.Process
		if o := p.snap.Namespaces[e.A.NS]; o != nil {
			pr = o.Processes[e.A.Name]
		}
		running := pr != nil && pr.Program == state.ProgramEmulate && pr.Spec == e.Spec() &&
			p.exists(e.A.NS, e.A.Name) != nil && p.exists(e.B.NS, e.B.Name) != nil
		switch {
		case !running:
			p.emit(StartEmulator{NS: e.A.NS, Link: e.A.Name, PeerNS: e.B.NS, Peer: e.B.Name, Spec: e.Spec(), A: a, B: b, Why: e.Why, Traces: traces})
		case pr.Emulator == nil || pr.Emulator.A != a || pr.Emulator.B != b:
			p.emit(SetEmulator{NS: e.A.NS, Link: e.A.Name, PeerNS: e.B.NS, Peer: e.B.Name, A: a, B: b, Traces: traces})
		}
	}
	return nil
}

// Recarries says whether a plan makes an end of the link of ns/link again
// (its carrier changes: a veth pair becomes two TAPs and an emulator, or
// back): then `netlab impair` must run the whole plan, not only its
// impairments, for the change to take.
func Recarries(p Plan, lab *topology.Lab, ns, link string) bool {
	ends := map[string]bool{key(ns, link): true}
	for _, l := range lab.Links {
		if (l.A.NS == ns && l.A.Name == link) || (l.B.NS == ns && l.B.Name == link) {
			ends[key(l.A.NS, l.A.Name)], ends[key(l.B.NS, l.B.Name)] = true, true
		}
	}
	for _, a := range p {
		switch s := a.Step.(type) {
		case AddVeth:
			if ends[key(s.NS, s.Link)] || ends[key(s.PeerNS, s.Peer)] {
				return true
			}
		case AddTuntap:
			if ends[key(s.NS, s.Link)] {
				return true
			}
		}
	}
	return false
}

// CarrierOf says who carries the interface ns/link and why: the userspace
// emulator (with its reason) or the kernel ("").
func CarrierOf(lab *topology.Lab, j *state.Journal, sup *state.ImpairSupport, ns, link string) string {
	for _, e := range wantEmulators(lab, j, sup) {
		if (e.A.NS == ns && e.A.Name == link) || (e.B.NS == ns && e.B.Name == link) {
			return e.Why
		}
	}
	return ""
}
