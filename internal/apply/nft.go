package apply

import (
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
)

// nftables' kinds: the lab's NAT table and its table of loss rules.
var nftHandlers = map[plan.Op]handler{
	plan.OpSetNAT: on(func(s *Session, a plan.SetNAT) error {
		_, err := nft.EnsureNAT(a.NS, s.lab, a.NAT)
		return err
	}).journaling(func(j *state.Journal, a plan.Action) {
		j.AddNAT(a.Step.(plan.SetNAT).NS)
	}),
	plan.OpDelNAT: on(func(s *Session, a plan.DelNAT) error {
		if err := nft.DeleteNAT(a.NS, s.lab); err != nil {
			return err
		}
		return s.journal(func(j *state.Journal) { j.RemoveNAT(a.NS) })
	}),
	plan.OpSetLoss: on(func(s *Session, a plan.SetLoss) error {
		_, err := nft.EnsureLoss(a.NS, s.lab, a.Loss)
		return err
	}).journaling(func(j *state.Journal, a plan.Action) {
		j.AddLoss(a.Step.(plan.SetLoss).NS)
	}),
	plan.OpDelLoss: on(func(s *Session, a plan.DelLoss) error {
		if err := nft.DeleteLoss(a.NS, s.lab); err != nil {
			return err
		}
		return s.journal(func(j *state.Journal) { j.RemoveLoss(a.NS) })
	}),
}
