package apply

import (
	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
)

// The qdiscs of impairments: netlab's root qdiscs on an interface.
var impairHandlers = map[plan.Op]handler{
	plan.OpSetQdisc: on(func(s *Session, a plan.SetQdisc) error {
		im := *a.Impair
		var tbf *kernel.TBF
		var netem *kernel.Netem
		if im.Rate != 0 {
			t := plan.TBFOf(im)
			tbf = &kernel.TBF{RateBytes: t.RateBytes, Burst: t.Burst, Limit: t.Limit}
		}
		if len(im.NetemFields()) > 0 || (im.Limit > 0 && im.Rate == 0) {
			netem = &kernel.Netem{Delay: im.Delay, Jitter: im.Jitter, Duplicate: im.Duplicate, Corrupt: im.Corrupt, Reorder: im.Reorder}
			if im.Rate == 0 {
				netem.Limit = uint32(im.Limit)
			}
		}
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.SetQdisc(a.Link, tbf, netem)
	}).journaling(func(j *state.Journal, a plan.Action) {
		j.AddQdiscNS(a.Step.(plan.SetQdisc).NS)
	}),
	plan.OpDelQdisc: on(func(s *Session, a plan.DelQdisc) error {
		h, err := s.ns(a.NS)
		if err != nil {
			return err
		}
		return h.DeleteQdisc(a.Link, a.Handle)
	}),
}
