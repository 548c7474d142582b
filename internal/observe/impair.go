package observe

import (
	"slices"

	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// wantsImpair says whether the lab or its journal asks for any impairment:
// only then does observe probe the kernel and read qdiscs.
func wantsImpair(lab *topology.Lab, j *state.Journal) bool {
	if len(lab.Impairments) > 0 || len(j.Impair) > 0 || len(j.Loss) > 0 || len(j.Qdiscs) > 0 {
		return true
	}
	// A timeline up starts: its impair events are checked against the
	// kernel before it does.
	for _, t := range plan.UpTimelines(lab, j) {
		for _, e := range t.Events {
			if len(e.Impair) > 0 {
				return true
			}
		}
	}
	return false
}

// observeImpair adds to the snapshot what the lab's impairments need: what
// the kernel supports (probed), the root qdiscs of the links in namespaces
// where the lab wants or made qdiscs, and its loss tables where it wants or
// made them.
func (s *Reader) observeImpair(lab *topology.Lab, j *state.Journal, snap *state.Snapshot) error {
	if !wantsImpair(lab, j) {
		return nil
	}
	sup, err := s.Probe()
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
		h, err := s.ns(name)
		if err != nil {
			return err
		}
		qs, err := h.ObserveQdiscs()
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
