package apply

import (
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
)

// The events' kinds: a link's administrative state through the netlink
// driver, and the partition tables through the nftables driver.
var eventHandlers = map[plan.Op]handler{
	plan.OpLinkDown: on(func(s *Session, a plan.LinkDown) error {
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.SetUp(a.Link, false)
	}),
	plan.OpLinkUp: on(func(s *Session, a plan.LinkUp) error {
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.SetUp(a.Link, true)
	}),
	plan.OpSetPartition: on(func(s *Session, a plan.SetPartition) error {
		_, err := nft.EnsurePartition(a.NS, s.lab, a.Drop)
		return err
	}).journaling(func(j *state.Journal, a plan.Action) {
		j.AddPartitionNS(a.Step.(plan.SetPartition).NS)
	}),
	plan.OpDelPartition: on(func(s *Session, a plan.DelPartition) error {
		if err := nft.DeletePartition(a.NS, s.lab); err != nil {
			return err
		}
		return s.journal(func(j *state.Journal) { j.RemovePartitionNS(a.NS) })
	}),
}
