package apply

import (
	"github.com/netlab-dev/netlab/internal/plan"
)

// The kinds of processes: the lab's supervised processes, and every
// process in namespaces about to go.
var processHandlers = map[plan.Op]handler{
	plan.OpStartProcess: on(func(s *Session, a plan.StartProcess) error {
		return s.procs.Start(a.NS, a.Link, a.Spec)
	}),
	plan.OpStopProcess: on(func(s *Session, a plan.StopProcess) error {
		return s.procs.Stop(a.NS, a.Link)
	}),
	plan.OpStopNSProcesses: on(func(s *Session, a plan.StopNSProcesses) error {
		if err := s.procs.StopInNamespaces(a.Namespaces); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ns := range a.Namespaces {
			s.nsStopped[ns] = true
		}
		return nil
	}),
}
