package engine

import (
	"errors"
	"fmt"

	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// ErrNoInterface is wrapped by errors about an interface the lab does not
// have.
var ErrNoInterface = errors.New("no such interface in the lab")

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
	p, err := e.event(lab, func(j *state.Journal, _, part *topology.Lab) (func(plan.Plan) plan.Plan, error) {
		var err error
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
		return func(whole plan.Plan) plan.Plan { return plan.Impairments(whole, link) }, nil
	})
	if err != nil && p != nil {
		return &Result{Plan: p}, fmt.Errorf("lab %s: impair %s/%s: %w", lab, ns, link, err)
	}
	if err != nil {
		return nil, err
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
