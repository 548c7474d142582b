package plan

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// An impairment's rate is a tbf qdisc, delay and the other netem fields a
// netem qdisc (the tbf's child when both), both at the root of the
// interface with netlab's handles (state.QdiscHandleTBF, QdiscHandleNetem);
// loss is an nftables rule on the interface's egress hook, in one netdev
// table of the lab per namespace, on every kernel (the same means whether
// or not netem exists, so a lab loses packets alike everywhere).

// TBF is the tbf qdisc of a rate, as the kernel takes it (tc-tbf(8)).
type TBF struct {
	RateBytes uint64 // bytes per second
	Burst     uint32 // bytes of the bucket
	Limit     uint32 // bytes that may wait in the queue
}

// Sizes of a tbf. The bucket holds 10 ms of the rate but at least 16 KiB:
// a packet larger than the bucket could never leave, and the largest one a
// veth sends (a TSO super-packet is split by tbf to fit; a jumbo frame is
// not) must fit. Unless limit: says otherwise, the queue holds 50 ms of the
// rate beyond the bucket, tc's usual latency; limit: N is N full frames.
const (
	tbfMinBurst  = 16 << 10
	tbfFrame     = 1514
	tbfLatencyMS = 50
)

// TBFOf sizes the tbf of an impairment's rate.
func TBFOf(im topology.Impair) TBF {
	rb := im.Rate / 8
	burst := max(rb/100, tbfMinBurst)
	limit := rb*tbfLatencyMS/1000 + burst
	if im.Limit > 0 {
		limit = uint64(im.Limit) * tbfFrame
	}
	return TBF{RateBytes: rb, Burst: uint32(min(burst, math.MaxUint32)), Limit: uint32(min(limit, math.MaxUint32))}
}

// qdiscPart is the part of an impairment the qdiscs apply: everything but
// loss, which the nftables rule does (and the choice of carrier).
func qdiscPart(im topology.Impair) topology.Impair {
	im.Loss = 0
	im.Emulator = ""
	return im
}

// needsNetem says whether the qdisc part needs a netem qdisc: a netem
// field, or a queue limit with no rate (whose tbf would hold the queue).
func needsNetem(im topology.Impair) bool {
	return len(im.NetemFields()) > 0 || (im.Limit > 0 && im.Rate == 0)
}

// RootHandle is the handle of the root qdisc netlab makes for an
// impairment's qdisc part.
func RootHandle(im topology.Impair) uint16 {
	if im.Rate != 0 {
		return state.QdiscHandleTBF
	}
	return state.QdiscHandleNetem
}

// netemArgs renders the netem options of tc-netem(8).
func netemArgs(im topology.Impair) string {
	var parts []string
	if im.Delay != 0 {
		d := "delay " + im.Delay.String()
		if im.Jitter != 0 {
			d += " " + im.Jitter.String()
		}
		parts = append(parts, d)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"duplicate", im.Duplicate}, {"corrupt", im.Corrupt}, {"reorder", im.Reorder}} {
		if f.v != 0 {
			parts = append(parts, f.name+" "+topology.FormatPercent(f.v))
		}
	}
	if im.Limit != 0 {
		parts = append(parts, fmt.Sprintf("limit %d", im.Limit))
	}
	return strings.Join(parts, " ")
}

// WantImpair is every interface's wanted impairment, by namespace and link:
// the file's, with those `netlab impair` set at run time (the journal's)
// in their place.
func WantImpair(lab *topology.Lab, j *state.Journal) map[string]map[string]topology.Impair {
	out := map[string]map[string]topology.Impair{}
	set := func(ns, link string, im topology.Impair) {
		if out[ns] == nil {
			out[ns] = map[string]topology.Impair{}
		}
		out[ns][link] = im
	}
	for _, im := range lab.Impairments {
		set(im.NS, im.Link, im.Impair)
	}
	if j != nil {
		for k, im := range j.Impair {
			ns, link, _ := strings.Cut(k, "/")
			set(ns, link, im)
		}
	}
	return out
}

// ImpairFeatureError names each place of the file (or runtime impairment)
// that needs what this kernel lacks, on an interface the userspace
// emulator does not carry (emulated: its ends, by "ns/link"), or what only
// the emulator does on one it cannot carry (a TAP, a tunnel to another
// machine, a link that says emulator: kernel); nil when all can be applied.
// Kernel features are not checked when support was not probed.
func ImpairFeatureError(lab *topology.Lab, want map[string]map[string]topology.Impair, sup *state.ImpairSupport, emulated map[string]*Emulated) error {
	byPlace := map[string]*topology.Impairment{}
	for _, im := range lab.Impairments {
		byPlace[key(im.NS, im.Link)] = im
	}
	feats := map[string]topology.ErrorList{}
	var order []string
	add := func(feature string, e *topology.Error) {
		if feats[feature] == nil {
			order = append(order, feature)
		}
		feats[feature] = append(feats[feature], e)
	}
	for _, ns := range state.SortedNames(want) {
		for _, link := range state.SortedNames(want[ns]) {
			im := want[ns][link]
			if emulated[key(ns, link)] != nil {
				continue // the emulator applies all of it
			}
			place := func(field, why string) *topology.Error {
				e := &topology.Error{File: lab.File, Path: key(ns, link) + " (netlab impair)", Msg: why}
				if fi := byPlace[key(ns, link)]; fi != nil && fi.Impair == im {
					e.Path, e.Pos = fi.Path+"."+field, fi.FieldPos[field]
				}
				return e
			}
			for _, f := range im.EmulatorFields() {
				add("netlab's userspace emulator", place(f, f+" needs netlab's userspace emulator, which carries links netlab makes on this machine (veth ends, bridge ports; not a TAP, nor a link to another machine) unless they say emulator: kernel"))
			}
			if sup == nil {
				continue
			}
			if !sup.Netem {
				fields := im.NetemFields()
				if im.Limit > 0 && im.Rate == 0 {
					fields = append(fields, "limit")
				}
				for _, f := range fields {
					msg := f + " needs the kernel's netem qdisc (sch_netem, CONFIG_NET_SCH_NETEM), which this kernel does not have"
					if f == "limit" {
						msg = "limit without rate is a netem queue (sch_netem, CONFIG_NET_SCH_NETEM), which this kernel does not have; with rate: it is the tbf's queue"
					}
					add("sch_netem", place(f, msg))
				}
			}
			if im.Rate != 0 && !sup.TBF {
				add("sch_tbf", place("rate", "rate needs the kernel's tbf qdisc (sch_tbf, CONFIG_NET_SCH_TBF), which this kernel does not have"))
			}
			if im.Loss != 0 && !sup.NftEgress {
				add("nftables egress", place("loss", "loss needs nftables netdev egress chains (Linux 5.16 or later, CONFIG_NETFILTER_EGRESS), which this kernel does not have"))
			}
		}
	}
	if len(order) == 0 {
		return nil
	}
	var all topology.ErrorList
	for _, f := range order {
		all = append(all, feats[f]...)
	}
	return &topology.FeatureError{Feature: strings.Join(order, ", "), Errs: all}
}

// impairClashes are the lab's wanted impairments that would touch what is
// not netlab's: a root qdisc someone else made, or a netdev table with the
// lab's name that netlab did not make.
func (p *planner) impairClashes(j *state.Journal, clash func(topology.Pos, string, string, ...any)) {
	byPlace := map[string]*topology.Impairment{}
	for _, im := range p.lab.Impairments {
		byPlace[key(im.NS, im.Link)] = im
	}
	where := func(ns, link string) (topology.Pos, string) {
		if fi := byPlace[key(ns, link)]; fi != nil {
			return fi.Pos, fi.Path
		}
		return topology.Pos{}, key(ns, link)
	}
	for _, ns := range state.SortedNames(p.impair) {
		lossWanted := false
		for _, link := range state.SortedNames(p.impair[ns]) {
			im := p.impair[ns][link]
			if p.emulated(ns, link) != nil {
				continue // no qdisc, no loss rule: the emulator's
			}
			lossWanted = lossWanted || im.Loss != 0
			if qdiscPart(im).IsZero() {
				continue
			}
			if l := p.observedLink(ns, link); l != nil && l.Qdisc != nil && !l.Qdisc.Ours {
				pos, path := where(ns, link)
				clash(pos, path, "interface %s in namespace %s has a root qdisc %s %x: that netlab did not make; netlab leaves it alone (tc qdisc del dev %s root removes it)",
					link, ns, l.Qdisc.Kind, l.Qdisc.Handle, link)
			}
		}
		o := p.snap.Namespaces[ns]
		if lossWanted && o != nil && o.Loss != nil && (j == nil || !slices.Contains(j.Loss, ns)) {
			clash(topology.Pos{}, "namespaces."+ns, "nftables table netdev %s already exists in namespace %s and netlab did not make it; netlab leaves it alone", state.NFTTable(p.lab.Name), ns)
		}
	}
}

// sameQdisc says whether the observed qdiscs apply what is wanted.
func sameQdisc(want topology.Impair, q *state.Qdisc) bool {
	if q == nil || !q.Ours || q.Impair != observable(want) {
		return false
	}
	if want.Rate != 0 {
		t := TBFOf(want)
		return q.LimitBytes == t.Limit && closeTo(q.Burst, t.Burst)
	}
	return true
}

// observable is an impairment's qdisc part as the kernel reads it back: with
// a rate, the queue limit is the tbf's (compared in bytes); without, netem's
// default queue of 1000 packets is no limit at all.
func observable(im topology.Impair) topology.Impair {
	if im.Rate != 0 || im.Limit == netemDefaultLimit {
		im.Limit = 0
	}
	return im
}

// netemDefaultLimit is netem's queue when none is given, in packets.
const netemDefaultLimit = 1000

// closeTo compares a tbf bucket read back from the kernel, which keeps it
// as a time at the rate (rounded), with the planned size.
func closeTo(got, want uint32) bool {
	d := math.Abs(float64(got) - float64(want))
	return d <= float64(want)/100+2
}

// impairments makes each wanted link's qdiscs and each namespace's loss
// table match, and removes netlab's qdiscs where nothing is wanted any more.
// A link this plan creates has no qdisc yet; a loss table is replaced
// whole when a rule changes or one of its links is (re)made.
func (p *planner) impairments() {
	for _, nsName := range p.nsOrder() {
		var loss []state.LossRule
		fresh := false
		for _, name := range p.linkOrder(nsName) {
			w := p.want[nsName][name]
			if w.kind == kindOVSLocal {
				continue // the OVS bridge's own port: its qdisc is OVS's business
			}
			im := p.impair[nsName][name]
			if w.emu != nil {
				im = topology.Impair{} // the emulator applies it
			}
			o := p.exists(nsName, name)
			var have *state.Qdisc
			if o != nil {
				have = o.Qdisc
			}
			qp := qdiscPart(im)
			switch {
			case qp.IsZero() && have != nil && have.Ours:
				p.emit(DelQdisc{NS: nsName, Link: name, Handle: have.Handle})
			case !qp.IsZero() && !sameQdisc(qp, have):
				p.emit(SetQdisc{NS: nsName, Link: name, Impair: &qp})
			}
			if im.Loss != 0 {
				loss = append(loss, state.LossRule{Link: name, Percent: im.Loss})
				fresh = fresh || o == nil
			}
		}
		var have *state.LossTable
		if o := p.snap.Namespaces[nsName]; o != nil {
			have = o.Loss
		}
		switch {
		case len(loss) == 0 && have != nil:
			p.emit(DelLoss{NS: nsName})
		case len(loss) > 0 && (have == nil || have.Foreign || fresh || !sameLoss(loss, have.Loss)):
			p.emit(SetLoss{NS: nsName, Loss: loss})
		}
	}
}

func sameLoss(want []state.LossRule, have map[string]float64) bool {
	if len(want) != len(have) {
		return false
	}
	for _, r := range want {
		got, ok := have[r.Link]
		if !ok || state.LossThreshold(got) != state.LossThreshold(r.Percent) {
			return false
		}
	}
	return true
}

// ImpairOf is what an interface's observed qdiscs and loss rule apply, for
// status: the qdisc part and the loss.
func ImpairOf(l *state.Link, t *state.LossTable) topology.Impair {
	var im topology.Impair
	if l != nil && l.Qdisc != nil && l.Qdisc.Ours {
		im = l.Qdisc.Impair
	}
	if l != nil && t != nil {
		im.Loss = t.Loss[l.Name]
	}
	return im
}

// wantImpair fills p.impair with the impairments of the links this lab (or
// this machine's part) wants, and fails if the kernel cannot apply one.
func (p *planner) wantImpair(j *state.Journal) error {
	p.impair = WantImpair(p.lab, j)
	for ns, links := range p.impair {
		for link := range links {
			if p.want[ns][link] == nil {
				delete(links, link)
			}
		}
	}
	return ImpairFeatureError(p.lab, p.impair, p.snap.Impair, p.emu)
}

// impairedPort says whether the lab impairs the host end of a bridge port.
// Open vSwitch writes an AF_XDP port's frames into the veth past its qdisc
// and nftables' egress hook (seen here: 50 % loss on such a port lost no
// ping), so port-type auto gives an impaired port an AF_PACKET (system)
// port, and an AF_XDP type the file names is an error there.
func (p *planner) impairedPort(name string) bool {
	return !p.impair[topology.Host][name].Shaping().IsZero() || p.emulated(topology.Host, name) != nil
}

func afxdpImpairError(lab *topology.Lab, b *topology.Bridge, port string) *topology.Error {
	e := &topology.Error{File: lab.File, Pos: b.Pos, Path: "bridges." + b.Name + ".port-type",
		Msg: fmt.Sprintf("port %s is impaired, and Open vSwitch writes an AF_XDP port's frames past the qdisc and the egress hook, so the impairment would do nothing: use port-type: system (or auto), or impair the namespace end", port)}
	for _, im := range lab.Impairments {
		if im.NS == topology.Host && im.Link == port {
			e.Pos, e.Path = im.Pos, im.Path
		}
	}
	return e
}
