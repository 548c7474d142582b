package apply

import (
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/topology"
)

// The Linux bridge's VLANs, through the kernel driver.
var vlanHandlers = map[plan.Op]handler{
	plan.OpSetVLANFiltering: on(func(s *Session, a plan.SetVLANFiltering) error {
		h, err := s.ns(topology.Host)
		if err != nil {
			return err
		}
		return h.SetVLANFiltering(a.Bridge, a.On)
	}),
	plan.OpAddVLAN: on(func(s *Session, a plan.AddVLAN) error {
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.AddVLAN(a.Link, a.Parent, a.ID, a.Alias)
	}),
	plan.OpSetBridgeVLANs: on(func(s *Session, a plan.SetBridgeVLANs) error {
		h, err := s.ns(topology.Host)
		if err != nil {
			return err
		}
		return h.SetBridgeVLANs(a.Link, a.VLANs)
	}),
}
