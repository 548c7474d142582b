package apply

import (
	"github.com/netlab-dev/netlab/internal/impair"
	"github.com/netlab-dev/netlab/internal/nat"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
)

// nftables' kinds: the lab's NAT table and its table of loss rules.
var nftHandlers = map[plan.Op]handler{
	plan.OpSetNAT: on(func(s *Session, a plan.SetNAT) error {
		var rules []nat.Rule
		for _, r := range a.NAT {
			rules = append(rules, nat.Rule{Source: r.Source, Out: r.Out})
		}
		_, err := nat.Ensure(a.NS, s.lab, rules)
		return err
	}).journaling(func(j *state.Journal, a plan.Action) {
		j.AddNAT(a.Step.(plan.SetNAT).NS)
	}),
	plan.OpDelNAT: on(func(s *Session, a plan.DelNAT) error {
		if err := nat.Delete(a.NS, s.lab); err != nil {
			return err
		}
		return s.journal(func(j *state.Journal) { j.RemoveNAT(a.NS) })
	}),
	plan.OpSetLoss: on(func(s *Session, a plan.SetLoss) error {
		var rules []impair.LossRule
		for _, r := range a.Loss {
			rules = append(rules, impair.LossRule{Link: r.Link, Threshold: plan.LossThreshold(r.Percent)})
		}
		return impair.SetLoss(a.NS, s.lab, rules)
	}).journaling(func(j *state.Journal, a plan.Action) {
		j.AddLoss(a.Step.(plan.SetLoss).NS)
	}),
	plan.OpDelLoss: on(func(s *Session, a plan.DelLoss) error {
		if err := impair.DeleteLoss(a.NS, s.lab); err != nil {
			return err
		}
		return s.journal(func(j *state.Journal) { j.RemoveLoss(a.NS) })
	}),
}
