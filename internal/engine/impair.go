package engine

import (
	"errors"
	"fmt"
	"slices"

	"github.com/netlab-dev/netlab/internal/impair"
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// ErrNoInterface is wrapped by errors about an interface the lab does not
// have.
var ErrNoInterface = errors.New("no such interface in the lab")

// wantsImpair says whether the lab or its journal asks for any impairment:
// only then does observe probe the kernel and read qdiscs.
func wantsImpair(lab *topology.Lab, j *state.Journal) bool {
	return len(lab.Impairments) > 0 || len(j.Impair) > 0 || len(j.Loss) > 0 || len(j.Qdiscs) > 0
}

// observeImpair adds to the snapshot what the lab's impairments need: what
// the kernel supports (probed), the root qdiscs of the links in namespaces
// where the lab wants or made qdiscs, and its loss tables where it wants or
// made them.
func (s *session) observeImpair(lab *topology.Lab, j *state.Journal, snap *state.Snapshot) error {
	if !wantsImpair(lab, j) {
		return nil
	}
	sup, err := s.e.probe()
	if err != nil {
		return err
	}
	snap.Impair = sup
	qdiscNS, lossNS := map[string]bool{}, map[string]bool{}
	for ns, links := range plan.WantImpair(lab, j) {
		for _, im := range links {
			qdiscNS[ns] = true
			if im.Loss != 0 {
				lossNS[ns] = true
			}
		}
	}
	for _, ns := range j.Qdiscs {
		qdiscNS[ns] = true
	}
	for _, ns := range j.Loss {
		lossNS[ns] = true
	}
	for _, name := range state.SortedNames(qdiscNS) {
		o := snap.Namespaces[name]
		if o == nil {
			continue // absent: so are its qdiscs
		}
		qs, err := impair.Observe(name)
		if err != nil {
			return err
		}
		for link, q := range qs {
			if l := o.Links[link]; l != nil {
				l.Qdisc = q
			}
		}
	}
	for _, name := range state.SortedNames(lossNS) {
		o := snap.Namespaces[name]
		if o == nil {
			continue
		}
		t, err := nft.ObserveLoss(name, lab.Name)
		if err != nil {
			return err
		}
		o.Loss = t
	}
	return nil
}

// observeDownLoss reads the lab's loss table in the host, which down
// removes (a lab namespace's goes with the namespace).
func observeDownLoss(lab string, j *state.Journal, host *state.Namespace) error {
	if !slices.Contains(j.Loss, topology.Host) {
		return nil
	}
	t, err := nft.ObserveLoss(topology.Host, lab)
	if err != nil {
		return err
	}
	host.Loss = t
	return nil
}

// recordImpairIntent journals, before the plan runs, where it will make
// qdiscs and loss tables.
func recordImpairIntent(a plan.Action, j *state.Journal) {
	switch a.Op {
	case plan.OpSetQdisc:
		j.AddQdiscNS(a.NS)
	case plan.OpSetLoss:
		j.AddLoss(a.NS)
	}
}

// applyImpair runs an impairment action.
func (s *session) applyImpair(a plan.Action) error {
	switch a.Op {
	case plan.OpSetQdisc:
		im := *a.Impair
		var tbf *impair.TBF
		var netem *impair.Netem
		if im.Rate != 0 {
			t := plan.TBFOf(im)
			tbf = &impair.TBF{RateBytes: t.RateBytes, Burst: t.Burst, Limit: t.Limit}
		}
		if len(im.NetemFields()) > 0 || (im.Limit > 0 && im.Rate == 0) {
			netem = &impair.Netem{Delay: im.Delay, Jitter: im.Jitter, Duplicate: im.Duplicate, Corrupt: im.Corrupt, Reorder: im.Reorder}
			if im.Rate == 0 {
				netem.Limit = uint32(im.Limit)
			}
		}
		return impair.Set(a.NS, a.Link, tbf, netem)
	case plan.OpDelQdisc:
		return impair.Delete(a.NS, a.Link, a.Handle)
	case plan.OpSetLoss:
		var rules []nft.LossRule
		for _, r := range a.Loss {
			rules = append(rules, nft.LossRule{Link: r.Link, Threshold: plan.LossThreshold(r.Percent)})
		}
		_, err := nft.EnsureLoss(a.NS, s.lab, rules)
		return err
	case plan.OpDelLoss:
		if err := nft.DeleteLoss(a.NS, s.lab); err != nil {
			return err
		}
		return s.journal(func(j *state.Journal) { j.RemoveLoss(a.NS) })
	}
	return fmt.Errorf("not an impairment action: %s", a.Op)
}

// isImpairOp says whether an action is one of the impairment actions.
func isImpairOp(op plan.Op) bool {
	return op == plan.OpSetQdisc || op == plan.OpDelQdisc || op == plan.OpSetLoss || op == plan.OpDelLoss
}

// labHasLink says whether the lab has the interface ns/link that an
// impairment may act on: either end of a veth, a TAP, a TUN.
func labHasLink(lab *topology.Lab, ns, link string) bool {
	for _, l := range lab.Links {
		for _, e := range []topology.LinkEnd{l.A, l.B} {
			if e.NS == ns && e.Name == link {
				return true
			}
		}
	}
	if n := lab.Namespace(ns); n != nil {
		for _, t := range n.TAPs {
			if t.Name == link {
				return true
			}
		}
		for _, t := range n.TUNs {
			if t.Name == link {
				return true
			}
		}
	}
	return false
}

// resolveLink names an interface as on the machine: ns and link as the
// machine has them, or as the file writes them (without the lab's prefix),
// like `netlab exec`.
func resolveLink(lab *topology.Lab, prefix, ns, link string) (string, string, error) {
	nsNames := []string{ns}
	if ns != topology.Host {
		nsNames = append(nsNames, prefix+ns)
	}
	for _, n := range nsNames {
		for _, l := range []string{link, prefix + link} {
			if labHasLink(lab, n, l) {
				return n, l, nil
			}
		}
	}
	return "", "", fmt.Errorf("lab %s: %s/%s: %w", lab.Name, ns, link, ErrNoInterface)
}

// CurrentImpair is the impairment the lab now wants on ns/link (named as
// on the machine, or as in the file): the one
// `netlab impair` set (runtime is true), else the file's.
func (e *Engine) CurrentImpair(lab, ns, link string) (im topology.Impair, runtime bool, err error) {
	part, err := e.LabPart(lab)
	if err != nil {
		return im, false, err
	}
	j, err := e.store.Load(lab)
	if err != nil {
		return im, false, err
	}
	if ns, link, err = resolveLink(part, j.Prefix, ns, link); err != nil {
		return im, false, err
	}
	if r, ok := j.Impair[state.ImpairKey(ns, link)]; ok {
		return r, true, nil
	}
	return plan.WantImpair(part, nil)[ns][link], false, nil
}

// Impair changes the impairment of one interface of a running lab (named
// as on the machine, or as in the file) at run time: change edits the
// impairment in force (the file's, or an earlier change's), under the lab's
// lock so that two changes at once both count, and the result stands in for
// the file's (the zero Impair: none) until Impair is called with a nil
// change, which gives the interface the file's impairment back. An error of
// change is returned as it is, and nothing is changed. The change is
// journaled before it is applied, so `down` after a crash still removes it,
// and `up` keeps it. Only impairment actions run: other drift of the lab is
// up's business.
//
// Equivalent to: the `tc` and `nft` commands of the actions it returns.
func (e *Engine) Impair(lab, ns, link string, change func(*topology.Impair) error) (*Result, error) {
	unlock, err := e.store.Lock(lab)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !e.store.Exists(lab) {
		return nil, fmt.Errorf("lab %s is not running", lab)
	}
	part, err := e.LabPart(lab)
	if err != nil {
		return nil, err
	}
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	if ns, link, err = resolveLink(part, j.Prefix, ns, link); err != nil {
		return nil, err
	}
	if change == nil {
		j.ResetRuntimeImpair(ns, link)
	} else {
		im, ok := j.Impair[state.ImpairKey(ns, link)]
		if !ok {
			im = plan.WantImpair(part, nil)[ns][link]
		}
		if err := change(&im); err != nil {
			return nil, err
		}
		j.SetRuntimeImpair(ns, link, im)
	}
	oc, err := e.connectOVS(false)
	if err != nil && hasOVS(part) {
		return nil, err
	}
	s, err := e.newSession(lab, oc)
	if err != nil {
		return nil, err
	}
	defer s.close()
	snap, err := s.observe(part, j)
	if err != nil {
		return nil, err
	}
	full, err := plan.Make(planInput(part, snap, j, j.Force))
	if err != nil {
		return nil, err
	}
	var p plan.Plan
	for _, a := range full {
		// The port type follows an impairment of an OVS port (see
		// plan's impairedPort): that port's change runs too.
		if isImpairOp(a.Op) || a.Op == plan.OpSetPortType && slices.ContainsFunc(a.Ports, func(pt plan.Port) bool { return pt.Name == link }) {
			p = append(p, a)
		}
	}
	for _, a := range p {
		recordImpairIntent(a, j)
	}
	if err := e.store.Save(j); err != nil {
		return nil, err
	}
	s.j = j
	if done, err := s.applyPlan(p, applyOptions{after: s.e.afterAct}); err != nil {
		return &Result{Plan: p[:done]}, fmt.Errorf("lab %s: impair %s/%s: %w", lab, ns, link, err)
	}
	return &Result{Plan: p}, nil
}

// impairStatus is what status shows of an interface's impairments: what
// its netlab qdiscs and loss rule apply, and whether `netlab impair` set it.
func impairStatus(ns string, l *state.Link, o *state.Namespace, j *state.Journal) (string, bool) {
	_, runtime := j.Impair[state.ImpairKey(ns, l.Name)]
	im := plan.ImpairOf(l, o.Loss)
	if im.IsZero() {
		if runtime {
			return "none", true
		}
		return "", false
	}
	return im.String(), runtime
}
